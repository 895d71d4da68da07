// `yubin domain|user|alias|mailbox ...`: the mail directory in the store.
// Each command prints a short confirmation (or --json) and exits non-zero
// with "yubin: <reason>" on failure.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

#include "cli/context.h"

namespace yubin::cli {

// The chosen command stores its action here; main() runs it after parsing.
using Action = std::function<int()>;

void add_directory_commands(CLI::App& app, Context& context, Action& action);

}  // namespace yubin::cli
