// GDBServer: the socket gdb connects to and the thread that serves it (`swiftlet boot --gdb ADDRESS`).
//
// It listens on the loopback TCP port or Unix socket of the GDBEndpoint (bound while the machine is
// built, so a port in use is a build error), serves one client at a time, and keeps listening after a
// client leaves, like QEMU's gdbstub: a new connection stops the guest again. The thread polls the client
// and the stub's eventfd (a stop was recorded, or the run ended); bytes from the client go through the
// pure GDBConnection, whose replies are written back and whose actions (resume, Ctrl-C, detach, kill) the
// stub carries out. A client that disconnects, even mid-packet, is a detach: breakpoints out, guest
// running. Writes to a client that stops reading give up after `sendTimeoutSeconds`, so a hostile client
// cannot hang the VMM; reads never block (poll first).
import CKVM
import GDBRemote
import Glibc

final class GDBServer: @unchecked Sendable {
    let endpoint: GDBEndpoint
    let listenFD: Int32
    /// Where gdb connects (with the port the kernel chose for port 0).
    let address: String
    unowned let stub: GDBStub
    private var thread: pthread_t? = nil
    static let sendTimeoutSeconds = 5

    init(endpoint: GDBEndpoint, stub: GDBStub) throws(VMMError) {
        self.endpoint = endpoint
        self.stub = stub
        switch endpoint {
        case let .tcp(host, port):
            (listenFD, address) = try Self.listenTCP(host: host, port: port)
        case let .unix(path):
            listenFD = try Self.listenUnix(path: path)
            address = path
        }
    }

    static func failure(_ what: String, _ endpoint: String) -> VMMError {
        .invalidOption("--gdb \(endpoint): cannot \(what): \(String(cString: strerror(errno)))")
    }

    static func listenTCP(host: String, port: UInt16) throws(VMMError) -> (Int32, String) {
        let ipv6 = host.contains(":")
        let fd = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw failure("create a socket", host) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var bound: Int32
        var actualPort = port
        if ipv6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            a.sin6_addr = in6addr_loopback
            bound = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
            var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            if bound == 0, withUnsafeMutablePointer(to: &a, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }) == 0 {
                actualPort = UInt16(bigEndian: a.sin6_port)
            }
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian // 127.0.0.1
            bound = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            if bound == 0, withUnsafeMutablePointer(to: &a, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }) == 0 {
                actualPort = UInt16(bigEndian: a.sin_port)
            }
        }
        let shown = ipv6 ? "[\(host)]:\(port)" : "\(host):\(port)"
        guard bound == 0 else {
            let error = failure("listen there", shown)
            close(fd)
            throw error
        }
        guard listen(fd, 1) == 0 else {
            let error = failure("listen there", shown)
            close(fd)
            throw error
        }
        return (fd, ipv6 ? "[\(host)]:\(actualPort)" : "\(host):\(actualPort)")
    }

    /// A stale socket file is replaced, any other file in the way is refused (UnixSocketListener).
    static func listenUnix(path: String) throws(VMMError) -> Int32 {
        try UnixSocketListener.listen(path: path, option: "--gdb")
    }

    deinit {
        close(listenFD)
        if case let .unix(path) = endpoint { unlink(path) }
    }

    // MARK: The thread

    func start() {
        let context = Unmanaged.passRetained(self)
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { raw in
            let server = Unmanaged<GDBServer>.fromOpaque(raw!).takeRetainedValue()
            // The vCPU kick signal is for vCPU threads; the stop signals are for the run loop.
            _ = ckvm_thread_signal_mask(kickSignal, 1)
            Confinement.enter(.gdb, name: "gdb")
            server.serve()
            return nil
        }, context.toOpaque())
        if result == 0 { thread = handle } else {
            context.release()
            printError("swiftlet: gdb: cannot start the server thread: \(String(cString: strerror(result))); releasing the guest")
            stub.detach()
        }
    }

    func join() {
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    private var ended: Bool { stub.endStatus.withLock { $0 } != nil }

    /// Accepts clients one after another until the run ends.
    private func serve() {
        while !ended {
            var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0), pollfd(fd: stub.eventFD, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 2, 500)
            if n < 0 && errno != EINTR { break }
            if fds[1].revents != 0 { _ = ckvm_eventfd_drain(stub.eventFD) }
            guard fds[0].revents != 0 else { continue }
            let client = accept(listenFD, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            var timeout = timeval(tv_sec: Self.sendTimeoutSeconds, tv_usec: 0)
            _ = setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var one: Int32 = 1
            if case .tcp = endpoint { _ = setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size)) }
            converse(with: client)
            close(client)
        }
    }

    /// One gdb session: stop the guest, then answer packets until the client leaves or the run ends.
    private func converse(with fd: Int32) {
        let first = stub.stopAll(reason: .attached, thread: 1)
        if ended { sendExit(fd); return }
        printError("swiftlet: gdb: client connected; the guest is stopped")
        let connection = GDBConnection(session: GDBSession(target: stub, stoppedBy: first))
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: stub.eventFD, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 2, 500)
            if n < 0 && errno != EINTR { break }
            if fds[1].revents != 0 { _ = ckvm_eventfd_drain(stub.eventFD) }
            if ended {
                if case .running = connection.session.state { _ = send(fd, connection.exited(status: stub.endStatus.withLock { $0 } ?? 0)) }
                return
            }
            // A stop the vCPUs (or Ctrl-C) recorded: once every vCPU is parked, tell gdb.
            if case .running = connection.session.state, stub.gate.isStopped {
                _ = stub.gate.waitUntilParked(milliseconds: 5000)
                if let event = stub.gate.takeEvent() {
                    guard send(fd, connection.stopped(event)) else { break }
                }
            }
            guard fds[0].revents != 0 else { continue }
            let count = read(fd, &buffer, buffer.count)
            if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard count > 0 else { break } // the client went away
            let (output, actions) = connection.receive(buffer[0..<count])
            guard send(fd, output) else { break }
            for action in actions {
                switch action {
                case let .resume(plan):
                    stub.resume(plan)
                case .interrupt:
                    stub.gate.reportStop(StopEvent(thread: connection.session.generalThread, reason: .interrupted))
                case .detach:
                    printError("swiftlet: gdb: detached; the guest runs on")
                    stub.detach()
                    return
                case .kill:
                    printError("swiftlet: gdb: kill: stopping the VM")
                    stub.machine.finish(.stoppedBySignal(SIGKILL))
                    stub.gate.end()
                    return
                }
            }
        }
        printError("swiftlet: gdb: the client went away; breakpoints removed, the guest runs on")
        stub.detach()
    }

    private func sendExit(_ fd: Int32) {
        _ = send(fd, PacketDecoder.frame(Array("W\(String(decoding: Hex.encode(byte: UInt8(truncatingIfNeeded: stub.endStatus.withLock { $0 } ?? 0)), as: UTF8.self))".utf8)))
    }

    /// Writes all of `bytes`; false when the client is gone or stopped reading.
    private func send(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        return bytes.withUnsafeBytes { raw in
            while offset < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 { if errno == EINTR { continue }; return false }
                offset += n
            }
            return true
        }
    }
}
