# MIME parser fuzz target (common/mime); seed corpus in corpus/mime_fuzz/.
yubin_add_fuzzer(mime_fuzz SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/mime_fuzz.cc LIBS yubin_mime)
