#include "cli/context.h"

#include <iostream>

namespace yubin::cli {

Result<std::shared_ptr<const config::Config>> Context::config() {
    if (!config_) {
        auto loaded = config::load_config_file(config::find_config_path(config_path));
        if (!loaded) {
            return fail(loaded.error());
        }
        config_ = *loaded;
    }
    return config_;
}

Result<store::Store*> Context::store() {
    if (!store_) {
        auto cfg = config();
        if (!cfg) {
            return fail(cfg.error());
        }
        store::StoreOptions options;
        options.path = (*cfg)->store.path;
        options.map_size_bytes = (*cfg)->store.map_size_mb << 20;
        options.max_readers = (*cfg)->store.max_readers;
        options.large_body_bytes = (*cfg)->store.large_body_kb << 10;
        options.role = "cli";
        auto opened = store::Store::open(options);
        if (!opened) {
            return fail(opened.error().code,
                        "cannot open the store at " + options.path + ": " + opened.error().message);
        }
        store_ = std::move(*opened);
    }
    return store_.get();
}

int report_error(const Error& error) {
    std::cerr << "yubin: " << error.message << "\n";
    return 1;
}

}  // namespace yubin::cli
