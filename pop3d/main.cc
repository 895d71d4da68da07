// yubin-pop3d: the POP3 daemon (RFC 1939). Wiring only; the protocol is in
// session.h, the driver in server.h.
#include "common/daemon/daemon.h"
#include "pop3d/server.h"

int main(int argc, char** argv) {
    yubin::pop3d::Pop3Service service;
    return yubin::daemon::run_daemon(argc, argv, "yubin-pop3d", service);
}
