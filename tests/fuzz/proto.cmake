# proto: the bounded protocol reader.
yubin_add_fuzzer(line_reader_fuzz SOURCES line_reader_fuzz.cc LIBS yubin_proto)
