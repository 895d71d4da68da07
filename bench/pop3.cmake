# POP3 download-and-delete benchmark, side by side with Dovecot (issue #6).
# `cmake --build <dir> --target pop3_bench` (use a Release build dir; needs
# root and the shared bench kit, see bench/pop3_bench.sh).
if(TARGET yubin-pop3d)
  add_custom_target(pop3_bench
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/pop3_bench.sh $<TARGET_FILE:yubin-pop3d> $<TARGET_FILE:yubin>
    DEPENDS yubin-pop3d yubin
    USES_TERMINAL)
endif()
