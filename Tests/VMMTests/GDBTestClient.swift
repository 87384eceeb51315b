// GDBTestClient: a minimal GDB remote client for the stub's tests: a TCP connection to `swiftlet boot
// --gdb 127.0.0.1:0`, framed packets out, events in (through GDBRemote's own PacketDecoder), with
// timeouts so a test never hangs on a stub that does not answer. Also: starting the VMM and reading the
// port it printed, and a symbol lookup in the embedded tiny guests' ELF files.
import CGuestImages
import GDBRemote
import Glibc
import Testing
import TestSupport

final class GDBTestClient {
    private(set) var fd: Int32
    private var decoder = PacketDecoder()
    private var events: [FramingEvent] = []

    init?(port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { Glibc.close(fd); return nil }
        self.fd = fd
    }

    deinit { close() }

    /// Hangs up (as a client that vanishes does).
    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    func sendRaw(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            offset += n
        }
    }

    func send(_ payload: String) { sendRaw(PacketDecoder.frame(Array(payload.utf8))) }

    /// The next framing event from the stub, or nil after `timeout` seconds (or when it closed).
    func nextEvent(timeout: Double = 20) -> FramingEvent? {
        let deadline = now() + timeout
        while events.isEmpty {
            let left = deadline - now()
            guard left > 0 else { return nil }
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 1, Int32(left * 1000) + 1) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { return nil }
            events += decoder.feed(buffer[0..<n])
        }
        return events.removeFirst()
    }

    /// The next packet's payload (acks skipped), unescaped.
    func reply(timeout: Double = 20) -> String? {
        while let event = nextEvent(timeout: timeout) {
            if case let .packet(payload) = event { return String(decoding: PacketDecoder.unescape(payload) ?? payload, as: UTF8.self) }
        }
        return nil
    }

    func ask(_ payload: String, timeout: Double = 20) -> String? {
        send(payload)
        return reply(timeout: timeout)
    }

    /// Whether the stub closed the connection within `timeout` seconds.
    func closedByPeer(timeout: Double = 20) -> Bool {
        let deadline = now() + timeout
        while now() < deadline {
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 1, 200) > 0 else { continue }
            var byte: UInt8 = 0
            if read(fd, &byte, 1) <= 0 { return true }
        }
        return false
    }

    func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }
}

enum GDBTestSupport {
    /// Starts `swiftlet boot ARGS --gdb 127.0.0.1:0` and returns it with the port it printed.
    static func startVMM(_ arguments: [String]) -> (vmm: Spawned, port: UInt16)? {
        guard let vmm = Spawned.start(ProcessRunner.swiftletPath, ["boot"] + arguments + ["--gdb", "127.0.0.1:0"]) else { return nil }
        for _ in 0..<200 {
            let marker = "target remote 127.0.0.1:"
            if let line = vmm.stderrSoFar().split(separator: "\n").first(where: { $0.contains(marker) }),
               let port = UInt16(line.split(separator: ":").last?.prefix { $0.isNumber } ?? "") {
                return (vmm, port)
            }
            usleep(50_000)
        }
        kill(vmm.pid, SIGKILL)
        _ = vmm.wait()
        return nil
    }

    /// RIP of the selected thread, read with `g`.
    static func rip(_ gdb: GDBTestClient) -> UInt64? { gdb.ask("g").flatMap { register(X86Registers.Number.rip, in: $0) } }

    /// A register from a `g` reply (hex, target byte order), by gdb register number (64-bit ones).
    static func register(_ number: Int, in g: String) -> UInt64? {
        var offset = 0
        for i in 0..<number { offset += X86Registers.layout[i].bytes * 2 }
        let bytes = Array(g.utf8)
        guard bytes.count >= offset + 16, let raw = Hex.decode(bytes[offset..<(offset + 16)]) else { return nil }
        return raw.enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    static func embeddedImage(_ name: String) -> [UInt8] {
        var size = 0
        guard let bytes = swiftlet_guest_image(name, &size) else { return [] }
        return Array(UnsafeBufferPointer(start: bytes, count: size))
    }

    /// A symbol's value from an ELF32 or ELF64 file's symbol table (SHT_SYMTAB and its string table).
    static func symbol(_ name: String, in elf: [UInt8]) -> UInt64? {
        func u16(_ at: Int) -> Int { Int(elf[at]) | Int(elf[at + 1]) << 8 }
        func u32(_ at: Int) -> UInt64 { (0..<4).reduce(0) { $0 | UInt64(elf[at + $1]) << (8 * UInt64($1)) } }
        func u64(_ at: Int) -> UInt64 { u32(at) | u32(at + 4) << 32 }
        guard elf.count > 64, elf[0] == 0x7F else { return nil }
        let is64 = elf[4] == 2
        let shoff = Int(is64 ? u64(0x28) : u32(0x20))
        let shentsize = u16(is64 ? 0x3A : 0x2E), shnum = u16(is64 ? 0x3C : 0x30)
        for i in 0..<shnum {
            let sh = shoff + i * shentsize
            guard sh + shentsize <= elf.count, u32(sh + 4) == 2 else { continue } // SHT_SYMTAB
            let offset = Int(is64 ? u64(sh + 0x18) : u32(sh + 0x10)), size = Int(is64 ? u64(sh + 0x20) : u32(sh + 0x14))
            let link = Int(u32(sh + (is64 ? 0x28 : 0x18))), entsize = Int(is64 ? u64(sh + 0x38) : u32(sh + 0x24))
            let strtab = shoff + link * shentsize
            let strOffset = Int(is64 ? u64(strtab + 0x18) : u32(strtab + 0x10))
            for s in stride(from: offset, to: offset + size, by: entsize) {
                var at = strOffset + Int(u32(s))
                var text: [UInt8] = []
                while at < elf.count, elf[at] != 0 { text.append(elf[at]); at += 1 }
                if String(decoding: text, as: UTF8.self) == name { return is64 ? u64(s + 8) : u32(s + 4) }
            }
        }
        return nil
    }

    /// The gdb executable, if installed (Debian's `gdb` package; setup.sh installs it).
    static let gdbPath: String? = ["/usr/bin/gdb", "/usr/local/bin/gdb"].first { access($0, X_OK) == 0 }
}
