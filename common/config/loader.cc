// Loading: TOML text → toml++ tree → checks against the schema → Config.
// toml++ is included here only (it is heavy), never in a header.
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "common/config/config.h"
#include "common/config/schema.h"

namespace yubin::config {

namespace {

namespace fs = std::filesystem;

struct Problem {
    uint32_t line = 0;
    std::string key;
    std::string text;
};

class Collector {
  public:
    explicit Collector(std::string_view name) : name_(name) {}

    void add(const toml::node& where, std::string key, std::string text) {
        add(where.source().begin.line, std::move(key), std::move(text));
    }
    void add(uint32_t line, std::string key, std::string text) {
        problems_.push_back(Problem{line, std::move(key), std::move(text)});
    }
    bool empty() const { return problems_.empty(); }

    Error to_error() {
        std::stable_sort(problems_.begin(), problems_.end(),
                         [](const Problem& a, const Problem& b) { return a.line < b.line; });
        std::string message;
        for (const auto& p : problems_) {
            if (!message.empty()) {
                message += '\n';
            }
            if (p.line > 0) {
                message += fmt::format("{}:{}: {}: {}", name_, p.line, p.key, p.text);
            } else {
                message += fmt::format("{}: {}: {}", name_, p.key, p.text);
            }
        }
        return Error{ErrorCode::Invalid, std::move(message)};
    }

  private:
    std::string name_;
    std::vector<Problem> problems_;
};

std::string range_text(int64_t min, int64_t max) {
    return fmt::format("must be between {} and {}", min, max);
}

std::string duration_range_text(int64_t min, int64_t max) {
    return fmt::format("must be between {} and {}", format_duration(min), format_duration(max));
}

// Converts one TOML value to the schema's Value, or records why it cannot.
std::optional<Value> convert(const KeySpec& spec, const toml::node& node, const std::string& key,
                             Collector& errors) {
    switch (spec.kind) {
        case Kind::Int: {
            const auto* v = node.as_integer();
            if (v == nullptr) {
                errors.add(node, key, "must be an integer");
                return std::nullopt;
            }
            if (v->get() < spec.min || v->get() > spec.max) {
                errors.add(node, key, range_text(spec.min, spec.max));
                return std::nullopt;
            }
            return Value(v->get());
        }
        case Kind::Duration: {
            int64_t seconds = 0;
            if (const auto* i = node.as_integer()) {
                seconds = i->get();
            } else if (const auto* s = node.as_string()) {
                auto d = parse_duration(s->get());
                if (!d) {
                    errors.add(node, key,
                               "must be a duration: seconds, or a number with s, m, h or d "
                               "(\"90s\", \"5m\")");
                    return std::nullopt;
                }
                seconds = *d;
            } else {
                errors.add(node, key, "must be a duration (an integer of seconds, or \"5m\")");
                return std::nullopt;
            }
            if (seconds < spec.min || seconds > spec.max) {
                errors.add(node, key, duration_range_text(spec.min, spec.max));
                return std::nullopt;
            }
            return Value(seconds);
        }
        case Kind::Bool: {
            const auto* v = node.as_boolean();
            if (v == nullptr) {
                errors.add(node, key, "must be true or false");
                return std::nullopt;
            }
            return Value(v->get());
        }
        case Kind::String:
        case Kind::Path:
        case Kind::Enum: {
            const auto* v = node.as_string();
            if (v == nullptr) {
                errors.add(node, key, "must be a string");
                return std::nullopt;
            }
            const std::string& s = v->get();
            if (spec.kind == Kind::Enum &&
                std::find(spec.allowed.begin(), spec.allowed.end(), s) == spec.allowed.end()) {
                std::string list;
                for (const auto& a : spec.allowed) {
                    list += fmt::format("{}\"{}\"", list.empty() ? "" : ", ", a);
                }
                errors.add(node, key, fmt::format("must be one of {}", list));
                return std::nullopt;
            }
            if (spec.kind == Kind::Path && s.empty() &&
                !std::get<std::string>(spec.default_value).empty()) {
                errors.add(node, key, "must not be empty");
                return std::nullopt;
            }
            if (spec.check) {
                if (auto problem = spec.check(s)) {
                    errors.add(node, key, *problem);
                    return std::nullopt;
                }
            }
            return Value(s);
        }
        case Kind::AddressList: {
            const auto* arr = node.as_array();
            if (arr == nullptr) {
                errors.add(node, key, "must be an array of addresses like [\"0.0.0.0:25\"]");
                return std::nullopt;
            }
            std::vector<std::string> out;
            bool ok = true;
            for (size_t i = 0; i < arr->size(); ++i) {
                const toml::node& item = *arr->get(i);
                std::string item_key = fmt::format("{}[{}]", key, i);
                const auto* s = item.as_string();
                if (s == nullptr) {
                    errors.add(item, item_key, "must be a string");
                    ok = false;
                    continue;
                }
                auto parsed = parse_socket_address(s->get(), spec.default_port);
                if (!parsed) {
                    errors.add(item, item_key, parsed.error());
                    ok = false;
                    continue;
                }
                out.push_back(s->get());
            }
            if (!ok) {
                return std::nullopt;
            }
            return Value(std::move(out));
        }
        case Kind::CertPairs: {
            const auto* arr = node.as_array();
            if (arr == nullptr) {
                errors.add(node, key, "must be an array of tables with cert and key");
                return std::nullopt;
            }
            std::vector<TlsCertPair> out;
            bool ok = true;
            for (size_t i = 0; i < arr->size(); ++i) {
                const toml::node& item = *arr->get(i);
                std::string item_key = fmt::format("{}[{}]", key, i);
                const auto* t = item.as_table();
                if (t == nullptr) {
                    errors.add(item, item_key, "must be a table with cert and key");
                    ok = false;
                    continue;
                }
                TlsCertPair pair;
                for (auto&& [k, v] : *t) {
                    std::string field_key = fmt::format("{}.{}", item_key, k.str());
                    std::string* dest = k.str() == "cert"  ? &pair.cert
                                        : k.str() == "key" ? &pair.key
                                                           : nullptr;
                    if (dest == nullptr) {
                        errors.add(v, field_key, "unknown key");
                        ok = false;
                    } else if (const auto* s = v.as_string(); s == nullptr || s->get().empty()) {
                        errors.add(v, field_key, "must be a non-empty string");
                        ok = false;
                    } else {
                        *dest = s->get();
                    }
                }
                for (const char* required : {"cert", "key"}) {
                    if (!t->contains(required)) {
                        errors.add(item, fmt::format("{}.{}", item_key, required), "missing");
                        ok = false;
                    }
                }
                out.push_back(std::move(pair));
            }
            if (!ok) {
                return std::nullopt;
            }
            return Value(std::move(out));
        }
    }
    return std::nullopt;
}

std::string resolve_path(const std::string& base, const std::string& path) {
    if (path.empty() || fs::path(path).is_absolute()) {
        return path;
    }
    return (fs::path(base) / path).lexically_normal().string();
}

// The name other servers should see: gethostname(), qualified through the
// resolver (normally /etc/hosts) when it has no dot, as Postfix's myhostname.
std::string machine_fqdn() {
    char buf[256] = {};
    if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') {
        return "localhost";
    }
    std::string name(buf);
    if (name.find('.') != std::string::npos) {
        return name;
    }
    addrinfo hints{};
    hints.ai_flags = AI_CANONNAME;
    hints.ai_family = AF_UNSPEC;
    addrinfo* res = nullptr;
    if (getaddrinfo(name.c_str(), nullptr, &hints, &res) == 0 && res != nullptr) {
        std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(res, &freeaddrinfo);
        if (res->ai_canonname != nullptr &&
            std::string_view(res->ai_canonname).find('.') != std::string_view::npos) {
            return res->ai_canonname;
        }
    }
    return name;
}

// Makes every relative path absolute (docs/configuration.md, "Paths"):
// ConfigDir paths first, so state_dir is absolute before StateDir paths use it.
void resolve_paths(Config& config, const std::string& base_dir) {
    for (PathBase pass : {PathBase::ConfigDir, PathBase::StateDir}) {
        const std::string base = pass == PathBase::ConfigDir ? base_dir : config.server.state_dir;
        for (const auto& section : schema()) {
            for (const auto& key : section.keys) {
                if (key.base != pass) {
                    continue;
                }
                if (key.kind == Kind::Path) {
                    key.set(config, resolve_path(base, std::get<std::string>(key.get(config))));
                } else if (key.kind == Kind::CertPairs) {
                    auto pairs = std::get<std::vector<TlsCertPair>>(key.get(config));
                    for (auto& p : pairs) {
                        p.cert = resolve_path(base, p.cert);
                        p.key = resolve_path(base, p.key);
                    }
                    key.set(config, pairs);
                }
            }
        }
    }
}

// Two listeners on one address and port would either fail to bind or, with
// SO_REUSEPORT, silently share connections between two protocols. A wildcard
// (0.0.0.0 or ::) covers every address of its family on that port (IPv6
// sockets are V6ONLY, so the families do not overlap). Port 0 (any free port,
// for tests) never conflicts. Reported on the key written in the file.
void check_listener_conflicts(const Config& config,
                              const std::map<std::string, uint32_t>& key_lines,
                              Collector& errors) {
    struct Seen {
        std::string key;  // "smtpd.mx"
        size_t index;
        SocketAddress address;
    };
    std::vector<Seen> seen;
    auto overlaps = [](const SocketAddress& a, const SocketAddress& b) {
        if (a.port == 0 || a.port != b.port || a.ipv6 != b.ipv6) {
            return false;
        }
        const char* any = a.ipv6 ? "::" : "0.0.0.0";
        return a.ip == b.ip || a.ip == any || b.ip == any;
    };
    for (const auto& section : schema()) {
        for (const auto& key : section.keys) {
            if (key.kind != Kind::AddressList || key.default_port != 0) {
                continue;  // not a listener (dns.servers has a default port)
            }
            const std::string name = section.name + "." + key.name;
            const auto texts = std::get<std::vector<std::string>>(key.get(config));
            for (size_t i = 0; i < texts.size(); ++i) {
                auto address = parse_socket_address(texts[i], 0);
                if (!address) {
                    continue;
                }
                for (const auto& other : seen) {
                    if (!overlaps(*address, other.address)) {
                        continue;
                    }
                    // Blame the key the file set; if both are defaults the
                    // schema itself is wrong, which a unit test rules out.
                    auto here = key_lines.find(name);
                    auto there = key_lines.find(other.key);
                    if (here != key_lines.end()) {
                        errors.add(here->second, fmt::format("{}[{}]", name, i),
                                   fmt::format("{} overlaps {} in {}", texts[i],
                                               other.address.to_string(), other.key));
                    } else if (there != key_lines.end()) {
                        errors.add(there->second, fmt::format("{}[{}]", other.key, other.index),
                                   fmt::format("{} overlaps {} in {}", other.address.to_string(),
                                               texts[i], name));
                    } else {
                        errors.add(0, name, "overlaps " + other.key + " in the defaults");
                    }
                }
                seen.push_back(Seen{name, i, *address});
            }
        }
    }
}

Result<std::shared_ptr<const Config>> load(std::string_view text, std::string_view name,
                                           std::string base_dir) {
    Collector errors(name);
    toml::table root;
    try {
        root = toml::parse(text, name);
    } catch (const toml::parse_error& e) {
        errors.add(e.source().begin.line, "syntax error", std::string(e.description()));
        return tl::unexpected(errors.to_error());
    }

    std::map<std::string, uint32_t> key_lines;  // "section.key" → line, for keys in the file
    auto config = std::make_shared<Config>(unresolved_defaults());
    config->source = std::string(name);
    for (auto&& [section_key, section_node] : root) {
        const std::string section_name(section_key.str());
        const SectionSpec* section = find_section(section_name);
        if (section == nullptr) {
            errors.add(section_node, section_name, "unknown section");
            continue;
        }
        const toml::table* table = section_node.as_table();
        if (table == nullptr) {
            errors.add(section_node, section_name, "must be a section ([" + section_name + "])");
            continue;
        }
        for (auto&& [key, node] : *table) {
            const std::string full = section_name + "." + std::string(key.str());
            const KeySpec* spec = section->find(key.str());
            if (spec == nullptr) {
                // The key's own line: the value may be an inline table spanning lines.
                uint32_t line = key.source().begin.line;
                errors.add(line != 0 ? line : node.source().begin.line, full, "unknown key");
                continue;
            }
            if (auto value = convert(*spec, node, full, errors)) {
                spec->set(*config, *value);
                key_lines[full] = node.source().begin.line;
            }
        }
    }
    if (errors.empty()) {
        check_listener_conflicts(*config, key_lines, errors);
    }
    if (!errors.empty()) {
        return tl::unexpected(errors.to_error());
    }

    if (config->server.hostname.empty()) {
        config->server.hostname = machine_fqdn();
    }
    if (base_dir.empty()) {
        std::error_code ec;
        base_dir = fs::current_path(ec).string();
        if (ec) {
            return fail(ErrorCode::Io,
                        fmt::format("{}: current directory: {}", name, ec.message()));
        }
    }
    resolve_paths(*config, base_dir);
    return std::shared_ptr<const Config>(std::move(config));
}

}  // namespace

Result<std::shared_ptr<const Config>> load_config_file(const std::string& path) {
    std::error_code dir_ec;
    if (fs::is_directory(path, dir_ec)) {
        // An ifstream opens a directory and reads nothing: it would load as defaults.
        return fail(ErrorCode::Io, fmt::format("{}: is a directory", path));
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return fail(ErrorCode::Io, fmt::format("{}: cannot read: {}", path,
                                               std::generic_category().message(errno)));
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    if (in.bad()) {
        return fail(ErrorCode::Io, fmt::format("{}: read error", path));
    }
    std::error_code ec;
    fs::path abs = fs::absolute(fs::path(path), ec);
    if (ec) {
        return fail(ErrorCode::Io, fmt::format("{}: {}", path, ec.message()));
    }
    return load(buf.str(), path, abs.parent_path().lexically_normal().string());
}

Result<std::shared_ptr<const Config>> load_config_string(std::string_view toml,
                                                         std::string_view name_for_errors,
                                                         const LoadOptions& options) {
    std::string base = options.base_dir;
    if (!base.empty() && !fs::path(base).is_absolute()) {
        std::error_code ec;
        base = fs::absolute(fs::path(base), ec).lexically_normal().string();
    }
    return load(toml, name_for_errors, base);
}

std::string find_config_path(std::string_view flag_value) {
    if (!flag_value.empty()) {
        return std::string(flag_value);
    }
    std::error_code ec;
    if (fs::exists("conf/yubin.toml", ec)) {
        return "conf/yubin.toml";
    }
    return "/etc/yubin/yubin.toml";
}

std::vector<std::string> restart_required_changes(const Config& running, const Config& reloaded) {
    std::vector<std::string> out;
    for (const auto& section : schema()) {
        for (const auto& key : section.keys) {
            if (key.reload == Reload::Restart && key.get(running) != key.get(reloaded)) {
                out.push_back(section.name + "." + key.name);
            }
        }
    }
    return out;
}

std::string_view log_level_name(LogLevel level) noexcept {
    switch (level) {
        case LogLevel::Trace:
            return "trace";
        case LogLevel::Debug:
            return "debug";
        case LogLevel::Info:
            return "info";
        case LogLevel::Warn:
            return "warn";
        case LogLevel::Error:
            return "error";
    }
    return "info";
}

}  // namespace yubin::config
