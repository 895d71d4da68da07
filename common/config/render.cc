// Rendering a Config back to TOML (conf/yubin.toml, the quick-start file) and
// the key reference to Markdown, both straight from the schema table.
//
// TOML is written by hand rather than through toml++'s formatter because each
// key needs its doc comment above it, which toml++ cannot emit; the loader
// tests parse every rendered document back, so the escaping is checked.
#include <fmt/format.h>

#include "common/config/config.h"
#include "common/config/schema.h"

namespace yubin::config {

namespace {

// A TOML basic string (TOML 1.0 §String): escape quote, backslash and controls.
std::string quote(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\r':
                out += "\\r";
                break;
            default:
                if (u < 0x20 || u == 0x7f) {
                    out += fmt::format("\\u{:04X}", u);
                } else {
                    out += c;
                }
        }
    }
    out += '"';
    return out;
}

std::string render_value(const KeySpec& key, const Value& v) {
    switch (key.kind) {
        case Kind::Int:
            return fmt::format("{}", std::get<int64_t>(v));
        case Kind::Bool:
            return std::get<bool>(v) ? "true" : "false";
        case Kind::Duration:
            return quote(format_duration(std::get<int64_t>(v)));
        case Kind::String:
        case Kind::Path:
        case Kind::Enum:
            return quote(std::get<std::string>(v));
        case Kind::AddressList: {
            std::string out = "[";
            for (const auto& a : std::get<std::vector<std::string>>(v)) {
                out += fmt::format("{}{}", out.size() > 1 ? ", " : "", quote(a));
            }
            return out + "]";
        }
        case Kind::CertPairs: {
            // Only the empty case is rendered inline; see render_section.
            return "[]";
        }
    }
    return "";
}

std::string range_note(const KeySpec& key) {
    switch (key.kind) {
        case Kind::Int:
            return fmt::format(" Range {}..{}.", key.min, key.max);
        case Kind::Duration:
            return fmt::format(" Range {}..{}.", format_duration(key.min),
                               format_duration(key.max));
        case Kind::Enum: {
            std::string list;
            for (const auto& a : key.allowed) {
                list += fmt::format("{}{}", list.empty() ? "" : "|", a);
            }
            return fmt::format(" One of {}.", list);
        }
        default:
            return "";
    }
}

std::string key_comment(const KeySpec& key) {
    return fmt::format("# {}{}{}\n", key.doc, range_note(key),
                       key.reload == Reload::Restart ? " Restart to change." : "");
}

void render_section(std::string& out, const SectionSpec& section, const Config& config) {
    out += fmt::format("\n# {}\n[{}]\n", section.doc, section.name);
    std::string tables;  // [[section.key]] blocks must follow the plain keys
    for (const auto& key : section.keys) {
        Value v = key.get(config);
        if (key.kind == Kind::CertPairs) {
            const auto& pairs = std::get<std::vector<TlsCertPair>>(v);
            if (pairs.empty()) {
                out += key_comment(key);
                out += fmt::format(
                    "# To add some, replace the next line with tables:\n"
                    "#   [[{0}.{1}]]\n#   cert = \"/etc/yubin/tls/example.org.pem\"\n"
                    "#   key = \"/etc/yubin/tls/example.org.key\"\n{1} = []\n",
                    section.name, key.name);
            } else {
                tables += key_comment(key);
                for (const auto& p : pairs) {
                    tables += fmt::format("[[{}.{}]]\ncert = {}\nkey = {}\n", section.name,
                                          key.name, quote(p.cert), quote(p.key));
                }
            }
            continue;
        }
        out += key_comment(key);
        out += fmt::format("{} = {}\n", key.name, render_value(key, v));
    }
    if (!tables.empty()) {
        out += "\n" + tables;
    }
}

constexpr const char* kDefaultHeader =
    "# yubin configuration: every key, set to its default, with a one-line comment.\n"
    "# Copy to /etc/yubin/yubin.toml and change what you need; full reference and\n"
    "# reload rules in docs/configuration.md.\n"
    "#\n"
    "# Durations: seconds as an integer, or a string with a unit: \"90s\", \"5m\", \"2h\", "
    "\"1d\".\n"
    "# Relative paths resolve against this file's directory, except store.path,\n"
    "# which resolves against server.state_dir.\n"
    "#\n"
    "# Developers: this file is generated from common/config/schema.cc by\n"
    "# yubin_config_gen; a unit test fails when the two differ.\n";

// Text put inside a "# ..." comment must not end the comment early.
std::string comment_safe(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            c = '?';
        }
    }
    return out;
}

std::string render(const Config& config, std::string_view header) {
    std::string out(header);
    for (const auto& section : schema()) {
        render_section(out, section, config);
    }
    return out;
}

std::string markdown_cell(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '|') {
            out += "\\|";
        } else {
            out += c;
        }
    }
    return out;
}

std::string type_text(const KeySpec& key) {
    switch (key.kind) {
        case Kind::Int:
            return fmt::format("integer, {}..{}", key.min, key.max);
        case Kind::Bool:
            return "boolean";
        case Kind::Duration:
            return fmt::format("duration, {}..{}", format_duration(key.min),
                               format_duration(key.max));
        case Kind::String:
            return "string";
        case Kind::Path:
            return key.base == PathBase::StateDir ? "path (relative: to state_dir)"
                                                  : "path (relative: to the config file)";
        case Kind::Enum: {
            std::string list;
            for (const auto& a : key.allowed) {
                list += fmt::format("{}`{}`", list.empty() ? "" : ", ", a);
            }
            return "one of " + list;
        }
        case Kind::AddressList:
            return key.default_port != 0
                       ? fmt::format("array of \"ip[:port]\" (port {} if omitted)",
                                     key.default_port)
                       : "array of \"ip:port\" / \"[ipv6]:port\"";
        case Kind::CertPairs:
            return "array of tables {cert, key}";
    }
    return "";
}

}  // namespace

std::optional<std::string> replace_generated_block(std::string_view doc, std::string_view block) {
    size_t begin = doc.find(kGeneratedBegin);
    size_t end = doc.find(kGeneratedEnd);
    if (begin == std::string_view::npos || end == std::string_view::npos || end < begin) {
        return std::nullopt;
    }
    begin += kGeneratedBegin.size();
    std::string out(doc.substr(0, begin));
    out += "\n";
    out += block;
    out += doc.substr(end);
    return out;
}

std::string render_config_toml(const Config& config) {
    std::string header = "# yubin configuration";
    if (!config.source.empty()) {
        header += ", rendered from " + comment_safe(config.source);
    }
    header += ". Reference: docs/configuration.md.\n";
    return render(config, header);
}

std::string default_config_toml() {
    return render(unresolved_defaults(), kDefaultHeader);
}

std::string quickstart_config_toml(const std::string& state_dir_abs, const std::string& user) {
    Config c = unresolved_defaults();
    c.server.state_dir = state_dir_abs;
    c.server.user = user;
    c.server.group = "";
    c.tls.cert = state_dir_abs + "/tls/cert.pem";
    c.tls.key = state_dir_abs + "/tls/key.pem";
    // Loopback only, on unprivileged ports (ARCHITECTURE.md's quick-start table).
    auto loopback = [](uint16_t port) {
        return std::vector<SocketAddress>{{"127.0.0.1", port, false}, {"::1", port, true}};
    };
    c.smtpd.mx = loopback(2525);
    c.smtpd.submission = loopback(2587);
    c.smtpd.submissions = loopback(2465);
    c.imapd.imap = loopback(2143);
    c.imapd.imaps = loopback(2993);
    c.pop3d.pop3 = loopback(2110);
    c.pop3d.pop3s = loopback(2995);
    return render(
        c,
        "# yubin quick-start configuration, written by `yubin run`: state under\n"
        "# " +
            comment_safe(state_dir_abs) +
            ", loopback listeners on high ports, no privilege drop,\n"
            "# a self-signed certificate. Edit freely; `yubin run` keeps an existing file.\n"
            "# Reference: docs/configuration.md.\n");
}

std::string config_reference_markdown() {
    std::string out;
    for (const auto& section : schema()) {
        out += fmt::format("### [{}]\n\n{}\n\n", section.name, section.doc);
        out += "| key | type | default | on SIGHUP | description |\n";
        out += "|---|---|---|---|---|\n";
        for (const auto& key : section.keys) {
            std::string def = key.default_doc.empty()
                                  ? fmt::format("`{}`", render_value(key, key.default_value))
                                  : key.default_doc;
            out += fmt::format("| `{}` | {} | {} | {} | {} |\n", key.name,
                               markdown_cell(type_text(key)), markdown_cell(def),
                               key.reload == Reload::Live ? "applied" : "restart needed",
                               markdown_cell(key.doc));
        }
        out += "\n";
    }
    return out;
}

}  // namespace yubin::config
