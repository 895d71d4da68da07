// yubin: the admin CLI and quick-start supervisor. Wiring only: each noun's
// commands live in their own file.
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/context.h"
#include "cli/deliver_command.h"
#include "cli/directory_commands.h"
#include "cli/run_command.h"

int main(int argc, char** argv) {
    using namespace yubin::cli;
    CLI::App app{"yubin — mail server suite: administration and quick start"};
    app.set_version_flag("--version", "yubin 0.1.0");
    app.require_subcommand(1);
    Context context;
    app.add_option("-c,--config", context.config_path,
                   "Config file (default: conf/yubin.toml if present, else /etc/yubin/yubin.toml)");
    app.add_flag("--json", context.json, "Machine-readable output");
    Action action;
    add_directory_commands(app, context, action);
    add_deliver_command(app, context, action);
    add_run_command(app, context, action);
    add_config_commands(app, context, action);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    if (!action) {
        std::cerr << app.help();
        return 2;
    }
    return action();
}
