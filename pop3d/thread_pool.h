// Runs blocking work (password verification: yescrypt takes tens of
// milliseconds) on libuv's thread pool and its completion back on the loop
// thread, so the loop never stalls on it.
//
// Ownership: the request owns both closures until the completion ran. The
// completion always runs (also when libuv cancels the work at shutdown, with
// cancelled = true); a caller whose object may be gone by then captures a
// weak_ptr. Threads: call from the loop thread; `work` runs on a pool thread
// and must touch nothing the loop thread uses.
#pragma once

#include <functional>

#include "common/base/error.h"
#include "common/io/loop.h"

namespace yubin::pop3d {

[[nodiscard]] Result<void> run_on_pool(io::Loop& loop, std::function<void()> work,
                                       std::function<void(bool cancelled)> done);

}  // namespace yubin::pop3d
