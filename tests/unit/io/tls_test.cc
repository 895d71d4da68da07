// TlsEngine and TlsContext with no socket: two engines back to back.
#include <gtest/gtest.h>

#include <string>

#include "common/io/tls_context.h"
#include "common/io/tls_engine.h"
#include "tests/unit/io/test_support.h"

namespace yubin::io {
namespace {

using testing::TestCerts;

std::shared_ptr<const TlsContext> server_ctx(TlsVersion min = TlsVersion::Tls12) {
    const auto& c = TestCerts::get();
    TlsServerOptions o;
    o.certs = {{c.path("server.crt"), c.path("server.key")},
               {c.path("other.crt"), c.path("other.key")}};
    o.min_version = min;
    auto ctx = TlsContext::server(o);
    EXPECT_TRUE(ctx.has_value()) << (ctx ? "" : ctx.error().message);
    return *ctx;
}

std::shared_ptr<const TlsContext> client_ctx(bool verify, std::string ca = "ca.crt") {
    TlsClientOptions o;
    o.ca_file = TestCerts::get().path(ca);
    o.use_system_cas = false;
    o.verify = verify;
    auto ctx = TlsContext::client(o);
    EXPECT_TRUE(ctx.has_value()) << (ctx ? "" : ctx.error().message);
    return *ctx;
}

struct Pair {
    std::unique_ptr<TlsEngine> client;
    std::unique_ptr<TlsEngine> server;
    std::string client_got;
    std::string server_got;
    Result<void> client_result;
    Result<void> server_result;

    // Moves ciphertext both ways until nothing moves (or an engine fails).
    void pump() {
        for (int round = 0; round < 1000; ++round) {
            client_result = client->failed() ? client_result : client->process();
            std::string c2s = client->take_ciphertext();
            server->feed_ciphertext(c2s);
            server_result = server->failed() ? server_result : server->process();
            std::string s2c = server->take_ciphertext();
            client->feed_ciphertext(s2c);
            client_got += client->take_plaintext();
            server_got += server->take_plaintext();
            if (c2s.empty() && s2c.empty()) {
                return;
            }
        }
        FAIL() << "engines never went quiet";
    }
};

Pair make_pair(std::shared_ptr<const TlsContext> cctx, std::shared_ptr<const TlsContext> sctx,
               std::string_view name) {
    Pair p;
    auto c = TlsEngine::client(std::move(cctx), name);
    auto s = TlsEngine::server(std::move(sctx));
    EXPECT_TRUE(c && s);
    p.client = std::move(*c);
    p.server = std::move(*s);
    return p;
}

TEST(TlsEngine, HandshakeAndDataBothWays) {
    Pair p = make_pair(client_ctx(true), server_ctx(), "mail.example.test");
    p.client->write_plaintext("EHLO client\r\n");  // held until the handshake ends
    p.pump();
    ASSERT_TRUE(p.client_result.has_value()) << p.client_result.error().message;
    ASSERT_TRUE(p.server_result.has_value()) << p.server_result.error().message;
    ASSERT_TRUE(p.client->handshake_done());
    ASSERT_TRUE(p.server->handshake_done());
    EXPECT_EQ(p.server_got, "EHLO client\r\n");
    p.server->write_plaintext("250 hello\r\n");
    p.pump();
    EXPECT_EQ(p.client_got, "250 hello\r\n");

    const TlsInfo& ci = p.client->info();
    const TlsInfo& si = p.server->info();
    EXPECT_EQ(ci.version, "TLSv1.3");
    EXPECT_EQ(si.version, "TLSv1.3");
    EXPECT_FALSE(si.cipher.empty());
    EXPECT_EQ(si.cipher, ci.cipher);
    EXPECT_EQ(si.server_name, "mail.example.test");
    EXPECT_TRUE(ci.peer_verified) << ci.verify_error;
    EXPECT_NE(ci.peer_subject.find("mail.example.test"), std::string::npos);
}

TEST(TlsEngine, LargeDataArrivesIntact) {
    Pair p = make_pair(client_ctx(true), server_ctx(), "mail.example.test");
    p.pump();
    ASSERT_TRUE(p.client->handshake_done());
    std::string big;
    for (int i = 0; big.size() < 3 * 1024 * 1024; ++i) {
        big += "line " + std::to_string(i) + " of a large message body\r\n";
    }
    p.client->write_plaintext(big);
    p.server->write_plaintext(big);
    p.pump();
    EXPECT_EQ(p.server_got.size(), big.size());
    EXPECT_TRUE(p.server_got == big);
    EXPECT_TRUE(p.client_got == big);
    EXPECT_EQ(p.client->pending_plaintext(), 0u);
}

TEST(TlsEngine, CloseNotifyReachesThePeer) {
    Pair p = make_pair(client_ctx(true), server_ctx(), "mail.example.test");
    p.pump();
    p.client->write_plaintext("QUIT\r\n");
    p.client->close();
    p.pump();
    EXPECT_TRUE(p.client->close_sent());
    EXPECT_EQ(p.server_got, "QUIT\r\n");  // data before close_notify is kept
    EXPECT_TRUE(p.server->peer_closed());
    EXPECT_FALSE(p.client->peer_closed());
}

TEST(TlsEngine, UntrustedCertificateFailsWhenVerifying) {
    const auto& c = TestCerts::get();
    TlsServerOptions o;
    o.certs = {{c.path("evil.crt"), c.path("evil.key")}};
    auto evil = TlsContext::server(o);
    ASSERT_TRUE(evil);
    Pair p = make_pair(client_ctx(true), *evil, "mail.example.test");
    p.pump();
    ASSERT_FALSE(p.client_result.has_value());
    EXPECT_NE(p.client_result.error().message.find("certificate"), std::string::npos)
        << p.client_result.error().message;
    EXPECT_EQ(p.client_result.error().code, ErrorCode::Tls);
    EXPECT_FALSE(p.client->handshake_done());
    EXPECT_FALSE(p.server->handshake_done());  // the client's alert ended it
}

TEST(TlsEngine, UnverifiedPeerIsReportedWhenNotEnforced) {
    // Opportunistic TLS (RFC 7435): the handshake goes on, the result says why
    // the peer is not authenticated, and the caller's policy decides.
    Pair p = make_pair(client_ctx(false), server_ctx(), "wrong.example.test");
    p.pump();
    ASSERT_TRUE(p.client->handshake_done());
    EXPECT_FALSE(p.client->info().peer_verified);
    EXPECT_FALSE(p.client->info().verify_error.empty());

    Pair q = make_pair(client_ctx(false, "evilca.crt"), server_ctx(), "mail.example.test");
    q.pump();
    ASSERT_TRUE(q.client->handshake_done());
    EXPECT_FALSE(q.client->info().peer_verified);
}

TEST(TlsEngine, Tls11IsRefused) {
    TlsClientOptions o;
    o.use_system_cas = false;
    o.min_version = TlsVersion::Tls10;
    o.max_version = TlsVersion::Tls11;
    o.cipher_list = "DEFAULT:@SECLEVEL=0";  // so the client really offers TLS 1.1
    auto old = TlsContext::client(o);
    ASSERT_TRUE(old) << old.error().message;
    Pair p = make_pair(*old, server_ctx(), "mail.example.test");
    p.pump();
    EXPECT_FALSE(p.server_result.has_value());
    EXPECT_FALSE(p.client_result.has_value());
    EXPECT_FALSE(p.server->handshake_done());
}

TEST(TlsEngine, Tls12CanBeNegotiatedAndTls13Required) {
    TlsClientOptions o;
    o.ca_file = TestCerts::get().path("ca.crt");
    o.use_system_cas = false;
    o.max_version = TlsVersion::Tls12;
    auto c12 = TlsContext::client(o);
    ASSERT_TRUE(c12);
    Pair p = make_pair(*c12, server_ctx(), "mail.example.test");
    p.pump();
    ASSERT_TRUE(p.server->handshake_done());
    EXPECT_EQ(p.server->info().version, "TLSv1.2");
    // The default list allows only forward-secret AEAD suites.
    EXPECT_EQ(p.server->info().cipher.rfind("ECDHE-", 0), 0u) << p.server->info().cipher;
    EXPECT_NE(p.server->info().cipher.find("GCM"), std::string::npos) << p.server->info().cipher;

    Pair q = make_pair(*c12, server_ctx(TlsVersion::Tls13), "mail.example.test");
    q.pump();
    EXPECT_FALSE(q.server->handshake_done());
    EXPECT_FALSE(q.server_result.has_value());
}

TEST(TlsContext, SniSelection) {
    auto ctx = server_ctx();
    ASSERT_EQ(ctx->cert_count(), 2u);
    EXPECT_EQ(ctx->select("mail.example.test"), 0u);
    EXPECT_EQ(ctx->select("MAIL.Example.TEST"), 0u);
    EXPECT_EQ(ctx->select("other.test"), 1u);
    EXPECT_EQ(ctx->select("imap.other.test"), 1u);
    EXPECT_EQ(ctx->select("a.b.other.test"), 0u);  // a wildcard covers one label only
    EXPECT_EQ(ctx->select("xother.test"), 0u);
    EXPECT_EQ(ctx->select("unknown.example"), 0u);  // default = first
    EXPECT_EQ(ctx->names(1), (std::vector<std::string>{"other.test", "*.other.test"}));
}

TEST(TlsContext, SniChoosesTheCertificateInTheHandshake) {
    Pair p = make_pair(client_ctx(true), server_ctx(), "imap.other.test");
    p.pump();
    ASSERT_TRUE(p.client->handshake_done()) << p.client_result.error().message;
    EXPECT_TRUE(p.client->info().peer_verified);
    EXPECT_NE(p.client->info().peer_subject.find("other.test"), std::string::npos);
    EXPECT_EQ(p.server->info().server_name, "imap.other.test");

    Pair q = make_pair(client_ctx(true), server_ctx(), "mail.example.test");
    q.pump();
    EXPECT_NE(q.client->info().peer_subject.find("mail.example.test"), std::string::npos);
}

TEST(TlsContext, BadFilesAreErrors) {
    const auto& c = TestCerts::get();
    TlsServerOptions o;
    o.certs = {{c.path("nope.crt"), c.path("server.key")}};
    auto r = TlsContext::server(o);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("nope.crt"), std::string::npos);
    o.certs = {{c.path("server.crt"), c.path("other.key")}};  // key of another cert
    EXPECT_FALSE(TlsContext::server(o));
    EXPECT_FALSE(TlsContext::server(TlsServerOptions{}));
    auto client = client_ctx(false);
    EXPECT_FALSE(TlsEngine::server(client));  // wrong side
}

}  // namespace
}  // namespace yubin::io
