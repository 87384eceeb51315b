// ConsoleSocket: the host side of a virtio console port as a Unix stream socket (`--console-socket PATH`).
//
// The VMM listens on PATH (a stale socket file is replaced; any other file there is refused) and, like
// QEMU's `server,wait`, starts the guest only once the first client connected (or --timeout passed). It
// serves one client at a time: the client receives what the guest writes and what it sends becomes the
// guest's input. When it leaves, output is kept (up to `backlogLimit` bytes, the oldest dropped first)
// and sent to the next client, accepted on the virtio device thread. Connect with e.g.
// `socat - UNIX-CONNECT:PATH`.
import Glibc
import Synchronization

final class ConsoleSocket: @unchecked Sendable {
    let path: String
    let listenFD: Int32
    private let client = Mutex<Int32>(-1)
    private let backlog = Mutex<[UInt8]>([])
    static let backlogLimit = 1 << 20

    init(path: String) throws(VMMError) {
        let fd = try UnixSocketListener.listen(path: path, option: "--console-socket")
        self.path = path
        self.listenFD = fd
    }

    /// How waiting for the first client ended.
    enum ClientWait: Equatable {
        case connected(Int32)
        /// No client within the timeout.
        case timedOut
        /// `stopFD` became readable: the VMM was asked to stop.
        case stopped
        /// poll(2) or accept(2) failed.
        case failed
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) for the first client, so the guest's first bytes have
    /// somewhere to go. A readable `stopFD` (the VMM was asked to stop) ends the wait.
    func waitForClient(timeoutMilliseconds: Int32, stopFD: Int32 = -1) -> ClientWait {
        var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0), pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
        while true {
            let n = poll(&fds, stopFD >= 0 ? 2 : 1, timeoutMilliseconds)
            if n < 0 && errno == EINTR { continue }
            if n == 0 { return .timedOut }
            guard n > 0 else { return .failed }
            if fds[1].revents != 0 { return .stopped }
            return acceptClient().map { .connected($0) } ?? .failed
        }
    }

    /// Accepts a waiting client (replacing none: a second client waits until the first leaves); returns its fd.
    func acceptClient() -> Int32? {
        guard client.withLock({ $0 }) < 0 else { return nil }
        let fd = accept(listenFD, nil, nil)
        guard fd >= 0 else { return nil }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        let pending = backlog.withLock { b in defer { b.removeAll() }; return b }
        client.withLock { $0 = fd }
        if !pending.isEmpty { send(pending) }
        return fd
    }

    /// Sends guest output to the client, or keeps it for the next one.
    func send(_ bytes: [UInt8]) {
        let fd = client.withLock { $0 }
        if fd >= 0 {
            var offset = 0
            let ok = bytes.withUnsafeBytes { raw -> Bool in
                while offset < raw.count {
                    let n = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                    if n < 0 { if errno == EINTR { continue }; return false }
                    offset += n
                }
                return true
            }
            if ok { return }
            // The client went away: keep the rest for the next one.
            dropClient(fd)
            keep(Array(bytes[offset...]))
            return
        }
        keep(bytes)
    }

    private func keep(_ bytes: [UInt8]) {
        backlog.withLock { b in
            b += bytes
            if b.count > Self.backlogLimit { b.removeFirst(b.count - Self.backlogLimit) }
        }
    }

    /// Reads up to `limit` bytes the client sent; nil when it disconnected (the caller stops watching it).
    func receive(_ fd: Int32, limit: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: max(1, min(limit, 4096)))
        let n = read(fd, &buffer, buffer.count)
        if n < 0 && (errno == EINTR || errno == EAGAIN) { return [] }
        guard n > 0 else { dropClient(fd); return nil }
        return Array(buffer[0..<n])
    }

    func dropClient(_ fd: Int32) {
        client.withLock { if $0 == fd { $0 = -1; close(fd) } }
    }

    var clientFD: Int32 { client.withLock { $0 } }

    func closeAll() {
        let fd = client.withLock { c in defer { c = -1 }; return c }
        if fd >= 0 { Glibc.close(fd) }
        Glibc.close(listenFD)
        unlink(path)
    }
}
