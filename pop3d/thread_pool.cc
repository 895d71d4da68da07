#include "pop3d/thread_pool.h"

#include <memory>

#include <uv.h>

namespace yubin::pop3d {

namespace {

struct PoolRequest {
    uv_work_t req{};
    std::function<void()> work;
    std::function<void(bool)> done;
};

void on_work(uv_work_t* req) noexcept {
    auto* r = static_cast<PoolRequest*>(req->data);
    io::guarded("pop3d pool work", [r] { r->work(); });
}

void on_after_work(uv_work_t* req, int status) noexcept {
    // Freed here whatever happens: libuv is done with the request.
    std::unique_ptr<PoolRequest> r(static_cast<PoolRequest*>(req->data));
    io::guarded("pop3d pool done", [&r, status] { r->done(status == UV_ECANCELED); });
}

}  // namespace

Result<void> run_on_pool(io::Loop& loop, std::function<void()> work,
                         std::function<void(bool cancelled)> done) {
    auto r = std::make_unique<PoolRequest>();
    r->req.data = r.get();
    r->work = std::move(work);
    r->done = std::move(done);
    int rc = uv_queue_work(loop.raw(), &r->req, on_work, on_after_work);
    if (rc != 0) {
        return fail(io::uv_error("uv_queue_work", rc));
    }
    r.release();  // owned by libuv until on_after_work
    return {};
}

}  // namespace yubin::pop3d
