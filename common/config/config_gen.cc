// yubin_config_gen: writes conf/yubin.toml and the key reference inside
// docs/configuration.md from the schema table, so that neither drifts from
// the code. Run from anywhere: `yubin_config_gen <source dir>`; with --check
// it only reports (exit 1) whether the committed files are stale.
// A developer tool: single-threaded, exceptions are fine here.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "common/config/config.h"
#include "common/config/schema.h"

namespace {

bool read_file(const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return false;
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    out = buf.str();
    return true;
}

bool write_file(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
    bool check = false;
    std::string root;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--check") {
            check = true;
        } else {
            root = arg;
        }
    }
    if (root.empty()) {
        std::cerr << "usage: yubin_config_gen [--check] <source dir>\n";
        return 2;
    }
    const std::string toml_path = root + "/conf/yubin.toml";
    const std::string docs_path = root + "/docs/configuration.md";

    std::string docs;
    if (!read_file(docs_path, docs)) {
        std::cerr << docs_path << ": cannot read\n";
        return 2;
    }
    auto new_docs =
        yubin::config::replace_generated_block(docs, yubin::config::config_reference_markdown());
    if (!new_docs) {
        std::cerr << docs_path << ": generated-block markers missing\n";
        return 2;
    }
    const std::string new_toml = yubin::config::default_config_toml();

    if (check) {
        std::string old_toml;
        read_file(toml_path, old_toml);
        bool stale = false;
        if (old_toml != new_toml) {
            std::cerr << toml_path << ": out of date\n";
            stale = true;
        }
        if (docs != *new_docs) {
            std::cerr << docs_path << ": reference out of date\n";
            stale = true;
        }
        return stale ? 1 : 0;
    }
    if (!write_file(toml_path, new_toml) || !write_file(docs_path, *new_docs)) {
        std::cerr << "write failed\n";
        return 2;
    }
    std::cout << "wrote " << toml_path << " and " << docs_path << "\n";
    return 0;
}
