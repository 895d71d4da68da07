# smtp: command parser + reply parser + xtext invariants (common/smtp); seeds
# in corpus/smtp_command_fuzz/.
yubin_add_fuzzer(smtp_command_fuzz SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/smtp_command_fuzz.cc
  LIBS yubin_smtp)
