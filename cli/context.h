// What every `yubin` subcommand shares: the --config path, --json, and lazy
// access to the loaded configuration and the opened store. Commands run on
// the main thread only.
#pragma once

#include <memory>
#include <string>

#include "common/base/error.h"
#include "common/config/config.h"
#include "common/store/store.h"

namespace yubin::cli {

class Context {
public:
    std::string config_path;  // from --config; empty = default search
    bool json = false;

    // Loads the configuration once; later calls return the same snapshot.
    Result<std::shared_ptr<const config::Config>> config();
    // Opens the store named by the configuration once.
    Result<store::Store*> store();

private:
    std::shared_ptr<const config::Config> config_;
    std::unique_ptr<store::Store> store_;
};

// Prints "yubin: <message>" to stderr and returns the exit code for failures.
int report_error(const Error& error);

}  // namespace yubin::cli
