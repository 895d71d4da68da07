// `yubin deliver RECIPIENT... < message`: the local delivery agent. Reads one
// message from stdin and stores it for local recipients exactly as smtpd's
// local delivery does (one body however many recipients, MIME structure
// parsed once, Return-Path and Delivered-To per recipient), for operators who
// feed mail from elsewhere (fetchmail's mda, procmail, migrations) and for
// tests. Exit codes follow sendmail's LDA convention (sysexits.h): 0 stored,
// 67 unknown recipient, 75 temporary failure, 65 bad input.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/context.h"
#include "cli/directory_commands.h"

namespace yubin::cli {

void add_deliver_command(CLI::App& app, Context& context, Action& action);

// Converts bare LF line ends to CRLF (the form the store serves) and leaves
// CRLF alone; a lone CR is kept as it is.
std::string to_crlf(std::string_view text);

}  // namespace yubin::cli
