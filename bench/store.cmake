# store_bench: durable delivery rates of the LMDB store with group commit, next
# to the disk's own fsync-per-message rate, and bodies-in-LMDB vs files.
add_executable(store_bench ${CMAKE_CURRENT_LIST_DIR}/store_bench.cc)
target_link_libraries(store_bench PRIVATE yubin_store fmt::fmt)
