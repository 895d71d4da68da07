# pop3d's session fuzzer is declared in pop3d/CMakeLists.txt (it links the
# daemon's session library); make it part of `make fuzz`.
if(TARGET pop3d_session_fuzz)
  add_dependencies(yubin_fuzzers pop3d_session_fuzz)
endif()
