#include "cli/directory_commands.h"

#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/password_input.h"
#include "common/auth/password.h"
#include "common/base/strings.h"

namespace yubin::cli {
namespace {

using nlohmann::json;

// Holds the positional arguments of whichever subcommand runs.
struct Args {
    std::string first;
    std::string second;
    uint64_t quota_mb = 0;
    bool generate_password = false;
};

template <typename F>
int with_store(Context& context, F&& body) {
    auto store = context.store();
    if (!store) {
        return report_error(store.error());
    }
    return body(**store);
}

int done_or_error(const Result<void>& result, const std::string& message) {
    if (!result) {
        return report_error(result.error());
    }
    std::cout << message << "\n";
    return 0;
}

std::string format_bytes(uint64_t bytes) {
    if (bytes >= (1ULL << 30)) {
        return std::to_string(bytes >> 30) + " GiB";
    }
    if (bytes >= (1ULL << 20)) {
        return std::to_string(bytes >> 20) + " MiB";
    }
    if (bytes >= (1ULL << 10)) {
        return std::to_string(bytes >> 10) + " KiB";
    }
    return std::to_string(bytes) + " B";
}

// A new password: generated (and printed) or read from the terminal/stdin.
Result<std::string> obtain_password(bool generate, bool json_output, const std::string& user) {
    if (generate) {
        std::string pw = random_password();
        if (!json_output) {
            std::cout << "password for " << user << ": " << pw << "\n";
        }
        return pw;
    }
    return read_new_password();
}

void add_domain_commands(CLI::App& app, Context& context, Action& action, Args& args) {
    auto* domain = app.add_subcommand("domain", "Manage the local mail domains")->require_subcommand(1);
    auto* add = domain->add_subcommand("add", "Add a local domain");
    add->add_option("domain", args.first, "Domain name, e.g. example.com")->required();
    add->callback([&] {
        action = [&] {
            return with_store(context, [&](store::Store& s) {
                return done_or_error(s.add_domain(to_lower(args.first)),
                                     "domain " + to_lower(args.first) + " added");
            });
        };
    });
    auto* list = domain->add_subcommand("list", "List the local domains");
    list->callback([&] {
        action = [&] {
            return with_store(context, [&](store::Store& s) {
                auto domains = s.list_domains();
                if (!domains) {
                    return report_error(domains.error());
                }
                if (context.json) {
                    std::cout << json(*domains).dump(2) << "\n";
                } else {
                    for (const auto& d : *domains) {
                        std::cout << d << "\n";
                    }
                }
                return 0;
            });
        };
    });
    auto* remove = domain->add_subcommand("remove", "Remove a domain that has no users or aliases");
    remove->add_option("domain", args.first, "Domain name")->required();
    remove->callback([&] {
        action = [&] {
            return with_store(context, [&](store::Store& s) {
                return done_or_error(s.remove_domain(to_lower(args.first)),
                                     "domain " + to_lower(args.first) + " removed");
            });
        };
    });
}

json user_json(const store::UserRecord& u) {
    return json{{"address", u.address},
                {"quota_bytes", u.quota_bytes},
                {"quota_used_bytes", u.quota_used_bytes},
                {"bulk", (u.flags & store::kUserBulk) != 0},
                {"disabled", (u.flags & store::kUserDisabled) != 0},
                {"created", u.created}};
}

void add_user_commands(CLI::App& app, Context& context, Action& action, Args& args) {
    auto* user = app.add_subcommand("user", "Manage mail users")->require_subcommand(1);

    auto* add = user->add_subcommand(
        "add", "Add a user; the password is asked for, read from stdin, or generated");
    add->add_option("address", args.first, "Mail address, e.g. alice@example.com")->required();
    add->add_option("--quota", args.quota_mb, "Quota in MiB (0 = unlimited)");
    add->add_flag("--generate-password", args.generate_password,
                  "Generate a random password and print it");
    add->callback([&] {
        action = [&] {
            return with_store(context, [&](store::Store& s) {
                std::string address = canonical_address(args.first);
                auto parts = split_address(address);
                if (!parts) {
                    return report_error({ErrorCode::Invalid, "not a mail address: " + args.first});
                }
                // Check before asking for a password, so a typo fails fast.
                auto local = s.is_local_domain(parts->domain);
                if (!local) {
                    return report_error(local.error());
                }
                if (!*local) {
                    return report_error({ErrorCode::NotFound,
                                         "domain " + parts->domain +
                                             " is not local; add it with `yubin domain add`"});
                }
                auto password = obtain_password(args.generate_password, context.json, address);
                if (!password) {
                    return report_error(password.error());
                }
                auto hash = auth::hash_password(*password);
                if (!hash) {
                    return report_error(hash.error());
                }
                auto added = s.add_user(address, *hash, args.quota_mb << 20);
                if (!added) {
                    return report_error(added.error());
                }
                if (context.json) {
                    json out = user_json(*added);
                    if (args.generate_password) {
                        out["password"] = *password;
                    }
                    std::cout << out.dump(2) << "\n";
                } else {
                    std::cout << "user " << address << " added\n";
                }
                return 0;
            });
        };
    });

    auto* passwd = user->add_subcommand("passwd", "Set a user's password");
    passwd->add_option("address", args.first, "Mail address")->required();
    passwd->add_flag("--generate-password", args.generate_password,
                     "Generate a random password and print it");
    passwd->callback([&] {
        action = [&] {
            return with_store(context, [&](store::Store& s) {
                std::string address = canonical_address(args.first);
                if (auto existing = s.get_user(address); !existing) {
                    return report_error(existing.error());
                }
                auto password = obtain_password(args.generate_password, context.json, address);
                if (!password) {
                    return report_error(password.error());
                }
                auto hash = auth::hash_password(*password);
                if (!hash) {
                    return report_error(hash.error());
                }
                return done_or_error(s.set_password_hash(address, *hash),
                                     "password of " + address + " changed");
            });
        };
    });

    auto* verify = user->add_subcommand(
        "verify", "Check a password (read from stdin or the terminal); exit 0 if it matches");
    verify->add_option("address", args.first, "Mail address")->required();
    verify->callback([&] {
        action = [&] {
            return with_store(context, [&](store::Store& s) {
                auto u = s.get_user(canonical_address(args.first));
                if (!u) {
                    return report_error(u.error());
                }
                auto password = read_password_once("Password: ");
                if (!password) {
                    return report_error(password.error());
                }
                if (!auth::verify_password(*password, u->password_hash)) {
                    std::cerr << "yubin: password does not match\n";
                    return 1;
                }
                std::cout << "password matches\n";
                return 0;
            });
        };
    });

    auto* list = user->add_subcommand("list", "List users, optionally of one domain");
    list->add_option("domain", args.first, "Only users of this domain");
    list->callback([&] {
        action = [&] {
            return with_store(context, [&](store::Store& s) {
                auto users = s.list_users(to_lower(args.first));
                if (!users) {
                    return report_error(users.error());
                }
                if (context.json) {
                    json out = json::array();
                    for (const auto& u : *users) {
                        out.push_back(user_json(u));
                    }
                    std::cout << out.dump(2) << "\n";
                } else {
                    for (const auto& u : *users) {
                        std::cout << u.address << "  used " << format_bytes(u.quota_used_bytes)
                                  << " of "
                                  << (u.quota_bytes ? format_bytes(u.quota_bytes) : "unlimited")
                                  << "\n";
                    }
                }
                return 0;
            });
        };
    });

    auto* remove = user->add_subcommand("remove", "Remove a user and all of its mail");
    remove->add_option("address", args.first, "Mail address")->required();
    remove->callback([&] {
        action = [&] {
            return with_store(context, [&](store::Store& s) {
                std::string address = canonical_address(args.first);
                return done_or_error(s.remove_user(address), "user " + address + " removed");
            });
        };
    });
}

void add_alias_commands(CLI::App& app, Context& context, Action& action, Args& args) {
    auto* alias = app.add_subcommand("alias", "Manage aliases (\"@domain\" as source = catch-all)")
                      ->require_subcommand(1);
    auto* add = alias->add_subcommand("add", "Deliver mail for SOURCE to TARGET");
    add->add_option("source", args.first, "alias@domain, or @domain for a catch-all")->required();
    add->add_option("target", args.second, "Any address, local or external")->required();
    add->callback([&] {
        action = [&] {
            return with_store(context, [&](store::Store& s) {
                std::string source = canonical_address(args.first);
                std::string target = canonical_address(args.second);
                return done_or_error(s.add_alias(source, target),
                                     "alias " + source + " -> " + target + " added");
            });
        };
    });
    auto* list = alias->add_subcommand("list", "List aliases, optionally of one domain");
    list->add_option("domain", args.first, "Only aliases of this domain");
    list->callback([&] {
        action = [&] {
            return with_store(context, [&](store::Store& s) {
                auto aliases = s.list_aliases(to_lower(args.first));
                if (!aliases) {
                    return report_error(aliases.error());
                }
                if (context.json) {
                    json out = json::array();
                    for (const auto& a : *aliases) {
                        out.push_back({{"source", a.source}, {"target", a.target}});
                    }
                    std::cout << out.dump(2) << "\n";
                } else {
                    for (const auto& a : *aliases) {
                        std::cout << a.source << " -> " << a.target << "\n";
                    }
                }
                return 0;
            });
        };
    });
    auto* remove = alias->add_subcommand("remove", "Remove an alias (every target if none given)");
    remove->add_option("source", args.first, "Alias source")->required();
    remove->add_option("target", args.second, "Only this target");
    remove->callback([&] {
        action = [&] {
            return with_store(context, [&](store::Store& s) {
                std::string source = canonical_address(args.first);
                return done_or_error(s.remove_alias(source, canonical_address(args.second)),
                                     "alias " + source + " removed");
            });
        };
    });
}

void add_mailbox_commands(CLI::App& app, Context& context, Action& action, Args& args) {
    auto* mailbox = app.add_subcommand("mailbox", "Inspect mailboxes")->require_subcommand(1);
    auto* list = mailbox->add_subcommand("list", "List a user's mailboxes with their counters");
    list->add_option("user", args.first, "Mail address")->required();
    list->callback([&] {
        action = [&] {
            return with_store(context, [&](store::Store& s) {
                auto boxes = s.list_mailboxes(canonical_address(args.first));
                if (!boxes) {
                    return report_error(boxes.error());
                }
                if (context.json) {
                    json out = json::array();
                    for (const auto& m : *boxes) {
                        out.push_back({{"name", m.name},
                                       {"special_use", m.special_use},
                                       {"subscribed", m.subscribed},
                                       {"messages", m.messages},
                                       {"unseen", m.unseen},
                                       {"size_bytes", m.size_bytes},
                                       {"uidvalidity", m.uidvalidity},
                                       {"uidnext", m.uidnext},
                                       {"highestmodseq", m.highestmodseq}});
                    }
                    std::cout << out.dump(2) << "\n";
                } else {
                    for (const auto& m : *boxes) {
                        std::cout << m.name << (m.special_use.empty() ? "" : " ") << m.special_use
                                  << "  messages " << m.messages << ", unseen " << m.unseen
                                  << ", " << format_bytes(m.size_bytes) << "\n";
                    }
                }
                return 0;
            });
        };
    });
}

}  // namespace

void add_directory_commands(CLI::App& app, Context& context, Action& action) {
    // Lives as long as the process: the callbacks capture it by reference.
    static Args args;
    add_domain_commands(app, context, action, args);
    add_user_commands(app, context, action, args);
    add_alias_commands(app, context, action, args);
    add_mailbox_commands(app, context, action, args);
}

}  // namespace yubin::cli
