// `--gdb ADDRESS`: what both parsers accept (the lean front end's BootArguments and swiftlet-cli's
// ArgumentParser BootCommand), what they refuse and why, and a stub on a Unix socket.
import GDBRemote
import Glibc
import Testing
import TestSupport
import VMM

struct GDBEndpointTests {
    @Test(arguments: [
        ("1234", GDBEndpoint.tcp(host: "127.0.0.1", port: 1234)), (":1234", .tcp(host: "127.0.0.1", port: 1234)),
        ("127.0.0.1:0", .tcp(host: "127.0.0.1", port: 0)), ("localhost:9", .tcp(host: "127.0.0.1", port: 9)),
        ("tcp::1234", .tcp(host: "127.0.0.1", port: 1234)), ("[::1]:5", .tcp(host: "::1", port: 5)),
        ("/tmp/gdb.sock", .unix(path: "/tmp/gdb.sock")), ("unix:gdb.sock", .unix(path: "gdb.sock")),
    ])
    func acceptsLoopbackPortsAndSocketPaths(text: String, endpoint: GDBEndpoint) throws {
        #expect(try GDBEndpoint.parse(text) == endpoint)
    }

    @Test(arguments: [("0.0.0.0:1234", "loopback only"), ("192.168.1.2:1234", "loopback only"), ("[::]:1", "loopback only"),
                      ("abc", "not a port"), ("127.0.0.1:99999", "not a port"), ("127.0.0.1:", "not a port"),
                      ("[::1", "unbalanced"), ("unix:", "needs a socket path")])
    func refusesWithAReason(text: String, phrase: String) {
        do {
            _ = try GDBEndpoint.parse(text)
            Issue.record("\(text) accepted")
        } catch { #expect("\(error)".contains(phrase), "\(error)") }
    }

    @Test func bothParsersTakeGDB() throws {
        let parsed = try #require(try BootArguments.parse(["--guest", "loop", "--gdb", ":1234"]))
        #expect(parsed.configuration.gdb == .tcp(host: "127.0.0.1", port: 1234))
        let equals = try #require(try BootArguments.parse(["--gdb=/tmp/s"]))
        #expect(equals.configuration.gdb == .unix(path: "/tmp/s"))
        for binary in [ProcessRunner.swiftletPath, ProcessRunner.swiftletPath + "-cli"] {
            let r = ProcessRunner.run(binary, ["boot", "--guest", "hello", "--gdb", "0.0.0.0:1234"])
            #expect(r.status == ExitStatus.badInput, "\(binary): \(r.stderr)")
            #expect(r.stderr.contains("--gdb 0.0.0.0:1234: the gdb stub listens on loopback only"), "\(binary): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
        }
        let help = ProcessRunner.run(ProcessRunner.swiftletPath + "-cli", ["boot", "--help"])
        #expect(help.stdout.contains("--gdb ADDRESS"), "\(help.stdout)")
    }
}

@Suite(.serialized, .enabled(if: KVMRequirement.available, Comment(rawValue: KVMRequirement.reason)))
struct GDBListenTests {
    @Test func aPortInUseOrAFileInTheWayIsABuildError() {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = listen(fd, 1)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = UInt16(bigEndian: a.sin_port)
        let busy = ProcessRunner.run(ProcessRunner.swiftletPath, ["boot", "--guest", "hello", "--gdb", "127.0.0.1:\(port)"])
        #expect(busy.status == ExitStatus.badInput)
        #expect(busy.stderr.contains("cannot listen there: Address already in use"), "\(busy.stderr)")
        let file = "/tmp/swiftlet-test-gdb-\(getpid())"
        ProcessRunner.writeFile(file, [1])
        defer { unlink(file) }
        let blocked = ProcessRunner.run(ProcessRunner.swiftletPath, ["boot", "--guest", "hello", "--gdb", file])
        #expect(blocked.status == ExitStatus.badInput)
        #expect(blocked.stderr.contains("a file that is not a socket is in the way"), "\(blocked.stderr)")
    }

    @Test func theStubServesAUnixSocketAndRemovesItAtTheEnd() throws {
        let path = "/tmp/swiftlet-test-gdb-\(getpid()).sock"
        let vmm = try #require(Spawned.start(ProcessRunner.swiftletPath, ["boot", "--guest", "hello", "--gdb", path, "--timeout", "30"]))
        var fd: Int32 = -1
        for _ in 0..<100 {
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var a = sockaddr_un()
            a.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &a.sun_path) { raw in raw.copyBytes(from: Array(path.utf8) + [0]) }
            if withUnsafePointer(to: &a, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }) == 0 { break }
            close(fd)
            fd = -1
            usleep(50_000)
        }
        #expect(fd >= 0, "could not connect to \(path)")
        let packet = PacketDecoder.frame(Array("c".utf8))
        _ = packet.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var decoder = PacketDecoder()
        var events: [FramingEvent] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        while !events.contains(.packet(Array(GDBStubTests.exitReply.utf8))) {
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 1, 20_000) > 0 else { break }
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { break }
            events += decoder.feed(buffer[0..<n])
        }
        close(fd)
        #expect(events.contains(.packet(Array(GDBStubTests.exitReply.utf8))), "\(events)")
        #expect(vmm.wait().status == ExitStatus.guestExit(0))
        #expect(access(path, F_OK) != 0, "the socket file is removed")
    }
}
