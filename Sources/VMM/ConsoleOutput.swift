// ConsoleOutput: where the guest's serial bytes go on the host: stdout, line-buffered.
//
// One write(2) per line instead of per byte keeps the console cheap (and keeps a guest's line whole between
// --trace-exits lines); a partial line is flushed when the buffer fills, when the guest has been quiet for a
// moment (the run loop calls flushIfQuiet: a shell's prompt "/ # " ends without a newline and must show
// before the user types), and when the VM stops, so nothing the guest printed is lost or held back.
import CKVM
import Glibc
import Synchronization

public final class ConsoleOutput: Sendable {
    private let buffer = Mutex<[UInt8]>([])
    private let fd: Int32
    /// When the last byte arrived (monotonic ns), for flushIfQuiet.
    private let lastPut = Atomic<UInt64>(0)
    private let capture: Mutex<[UInt8]>?
    /// Held in a class box, not as a bare closure: a closure inside a generic Mutex is reabstracted on each
    /// `withLock` access (its inout value goes out and back through thunks), and each access wrapped it in two
    /// more thunks. A console flood built a chain of millions, slower with every byte, whose release at the
    /// end overflowed the stack (SIGSEGV, measured with a guest printing in a loop for 40 s).
    private let lineObserver = Mutex<LineObserver?>(nil)
    private final class LineObserver: Sendable {
        let call: @Sendable (String) -> Void
        init(_ call: @escaping @Sendable (String) -> Void) { self.call = call }
    }
    private let currentLine = Mutex<[UInt8]>([])

    /// - Parameter capture: also keep a copy of everything written (tests, compare).
    public init(fd: Int32 = 1, capture: Bool = false) {
        self.fd = fd
        self.capture = capture ? Mutex([]) : nil
    }

    /// Calls `observer` with each complete line the guest prints (the VMM's boot-milestone scanner).
    public func observeLines(_ observer: @escaping @Sendable (String) -> Void) {
        let box = LineObserver(observer)
        lineObserver.withLock { $0 = box }
    }

    public func put(_ byte: UInt8) {
        capture?.withLock { $0.append(byte) }
        observe(byte)
        buffer.withLock { b in
            b.append(byte)
            if byte == 0x0A || b.count >= 4096 { Self.writeAll(fd, b); b.removeAll(keepingCapacity: true) }
        }
        lastPut.store(ckvm_monotonic_ns(), ordering: .releasing)
    }

    /// Many bytes at once (a virtio buffer): one write(2) for the lot when it completes a line or fills the buffer.
    public func put<C: Collection<UInt8>>(contentsOf bytes: C) {
        capture?.withLock { $0.append(contentsOf: bytes) }
        if lineObserver.withLock({ $0 }) != nil { for byte in bytes { observe(byte) } }
        buffer.withLock { b in
            b.append(contentsOf: bytes)
            if b.count >= 4096 || bytes.contains(0x0A) { Self.writeAll(fd, b); b.removeAll(keepingCapacity: true) }
        }
        lastPut.store(ckvm_monotonic_ns(), ordering: .releasing)
    }

    private func observe(_ byte: UInt8) {
        guard let observer = lineObserver.withLock({ $0 }) else { return }
        let line: [UInt8]? = currentLine.withLock { l in
            if byte == 0x0A { defer { l.removeAll(keepingCapacity: true) }; return l }
            if l.count < 1024 { l.append(byte) }
            return nil
        }
        if let line { observer.call(String(decoding: line, as: UTF8.self)) }
    }

    /// Writes a partial line once nothing has arrived for `quiet` nanoseconds (the guest is waiting, e.g.
    /// at a prompt).
    public func flushIfQuiet(_ quiet: UInt64 = 20_000_000) {
        // The last byte's time first, then the clock: a vCPU thread may store a newer time at any moment,
        // and an unsigned difference the other way round trapped (seen in CI during a console flood).
        let last = lastPut.load(ordering: .acquiring)
        let now = ckvm_monotonic_ns()
        guard now > last, now - last >= quiet else { return }
        flush()
    }

    public func flush() {
        buffer.withLock { b in
            if !b.isEmpty { Self.writeAll(fd, b); b.removeAll(keepingCapacity: true) }
        }
    }

    /// Everything written so far (only with `capture: true`).
    public var captured: [UInt8] { capture?.withLock { $0 } ?? [] }

    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        if fd < 0 { return }
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 { if errno == EINTR { continue }; return }
                offset += n
            }
        }
    }
}

/// Writes a line to stderr without Foundation.
public func printError(_ line: String) {
    ConsoleOutput.writeAll(2, Array((line + "\n").utf8))
}
