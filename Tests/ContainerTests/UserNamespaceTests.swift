// UserNamespaceTests: `--userns` (RunOptions.applyUserNamespace): identity stays the default as root,
// subuid reads the caller's ranges from subuid(5) files, HOSTID:SIZE maps a range given on the command
// line; and a remapped container's root is an unprivileged host uid that cannot write host-root files.
@testable import Container
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct UserNamespaceTests {
    static let root = HostIdentity(uid: 0, gid: 0)

    func spec(_ arguments: [String], host: HostIdentity = root) throws -> ContainerSpec {
        try RunOptions.parse(["--rootfs", "/r"] + arguments + ["--", "true"]).makeSpec(host: host) { _ in }
    }

    @Test func identityIsTheDefaultAsRoot() throws {
        #expect(try spec([]).uidMappings == [.identity])
        #expect(try spec(["--userns", "identity"]).gidMappings == [.identity])
    }

    @Test func aRangeGivenOnTheCommandLineMapsContainerRootToIt() throws {
        let s = try spec(["--userns", "100000:65536"])
        #expect(s.uidMappings == [IDMapping(containerID: 0, hostID: 100000, size: 65536)])
        #expect(s.gidMappings == s.uidMappings)
        #expect(s.namespaces.first == .user)
    }

    @Test func subordinateRangesAreReadFromSubuidFiles() throws {
        let text = "# comment\nalice:100000:65536\nroot:200000:65536\n0:300000:10\n"
        #expect(try IDMapping.subordinate(user: "root", id: 0, in: text, file: "/etc/subuid") == IDMapping(containerID: 0, hostID: 200000, size: 65536))
        #expect(try IDMapping.subordinate(user: "bob", id: 0, in: text, file: "f") == IDMapping(containerID: 0, hostID: 300000, size: 10))
        #expect(throws: ContainerError.self) { try IDMapping.subordinate(user: "bob", id: 7, in: text, file: "f") }
        var s = try spec([])
        let file = "/tmp/swiftlet-test-subuid-\(getpid())"
        defer { unlink(file) }
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        try RunOptions().applyUserNamespace("subuid", to: &s, host: Self.root, subuid: file, subgid: file)
        #expect(s.uidMappings == [IDMapping(containerID: 0, hostID: 200000, size: 65536)])
    }

    @Test(arguments: ["100000", "1:0", "4294967295:2", "x:y"])
    func aBadValueIsRefusedInOneLine(value: String) {
        #expect(throws: ContainerError.self) { try spec(["--userns", value]) }
    }

    @Test func withoutRootOnlyTheCallersOwnIDCanBeMapped() {
        #expect(throws: ContainerError.self) { try spec(["--userns", "100000:65536"], host: HostIdentity(uid: 1000, gid: 1000)) }
    }
}

extension LauncherTests {
    @Test func aRemappedContainersRootIsAnUnprivilegedHostUser() throws {
        let spec = try RunOptions.parse(["--rootfs", Fixtures.rootfsPath, "--userns", "100000:65536", "--",
                                         "sh", "-c", "id -u; cat /proc/self/uid_map; touch /bin/swiftlet-test 2>&1; echo touch $?; ls -ln /bin/sh"])
            .makeSpec(host: HostIdentity(uid: 0, gid: 0)) { _ in }
        let run = Run.container(spec: spec)
        #expect(run.output.hasPrefix("0\n"), "root inside: \(run.output)")
        #expect(run.output.contains("0     100000      65536"), "\(run.output)")
        #expect(run.output.contains("touch 1") && run.output.contains("65534"), "host-root files are nobody's and read-only to it: \(run.output)")
    }
}
