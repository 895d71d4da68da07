# smtpd's session fuzzer is declared in smtpd/CMakeLists.txt; make it part of `make fuzz`.
if(TARGET smtpd_session_fuzz)
  add_dependencies(yubin_fuzzers smtpd_session_fuzz)
endif()
