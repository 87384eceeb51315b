// RunConveniencesTests: `swiftlet container run` spelled as podman spells it: -e/--env, -w/--workdir,
// -u/--user, --bind HOST:PATH[:ro|rw], --pids-limit, --network; writes that never reach the shared rootfs
// (a temporary overlay upper layer, or --upper DIR to keep them); TERM from the host's terminal.
@testable import Container
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

struct RunConveniencesParsingTests {
    @Test func podmanSpellingsBecomeTheSpec() throws {
        let options = try RunOptions.parse(["--rootfs", "/r", "-e", "A=1", "--env=B=2", "-w", "/tmp", "-u", "1000:100", "--pids-limit", "9",
                                            "--network", "host", "--bind", "/h:/c:rw", "--bind", "/h2:/c2", "--upper", "/u", "--", "true"])
        let spec = try options.makeSpec(host: HostIdentity(uid: 0, gid: 0)) { _ in }
        #expect(spec.process.env.suffix(2) == ["A=1", "B=2"])
        #expect(spec.process.cwd == "/tmp")
        #expect(spec.process.user == ContainerSpec.User(uid: 1000, gid: 100))
        #expect(spec.resources.pids == 9)
        #expect(!spec.namespaces.contains(.network))
        #expect(spec.mounts.suffix(2).map(\.options) == [["bind", "rw", "nosuid", "nodev"], ["bind", "ro", "nosuid", "nodev"]])
        #expect(spec.overlay == .directory("/u"))
        #expect(try RunOptions.parse(["--rootfs", "/r", "--", "true"]).makeSpec { _ in }.overlay == .temporary)
        #expect(try RunOptions.parse(["--rootfs", "/r", "--read-only", "--", "true"]).makeSpec { _ in }.overlay == nil)
    }

    @Test func badValuesAreOneLineErrors() {
        for (arguments, message) in [(["-u", "root"], "spec: --user root: give UID or UID:GID as numbers"),
                                     (["-u", "1:x"], "spec: --user 1:x: the GID is not a number"),
                                     (["-w", "tmp"], "spec: --workdir tmp: give an absolute path"),
                                     (["-e", "=x"], "spec: -e =x: give NAME=VALUE or NAME")] {
            let error = #expect(throws: ContainerError.self) {
                try RunOptions.parse(["--rootfs", "/r"] + arguments + ["--", "true"]).makeSpec { _ in }
            }
            #expect(error?.description == message)
        }
    }
}

@Suite(.serialized, .enabled(if: CLI.available, "needs root, the busybox rootfs and the swiftlet binaries"))
struct RunConveniencesTests {
    let rootfs = Fixtures.rootfs ?? ""

    @Test func environmentWorkdirAndUser() {
        let r = CLI.run("run --rootfs \(rootfs) -e GREETING=hi -w /tmp -u 1000:1000 -- sh -c 'echo $GREETING; pwd; id -u; id -g'")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "hi\n/tmp\n1000\n1000\n")
    }

    @Test func writesStayOutOfTheSharedRootfsUnlessKept() throws {
        let marker = "/swiftlet-overlay-test-\(getpid())"
        let r = CLI.run("run --rootfs \(rootfs) -- sh -c 'echo x > \(marker) && cat \(marker)'")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "x\n")
        #expect(!FileSystemProbe.exists(rootfs + marker), "the write did not land in the image")
        let keep = try TemporaryDirectory()
        #expect(CLI.run("run --rootfs \(rootfs) --upper \(keep.path)/layer -- sh -c 'echo kept > \(marker)'").status == 0)
        #expect(FileSystemProbe.read(keep.path + "/layer/upper" + marker) == "kept\n")
        #expect(!FileSystemProbe.exists(rootfs + marker))
        let second = CLI.run("run --rootfs \(rootfs) --upper \(keep.path)/layer -- cat \(marker)")
        #expect(second.stdout == "kept\n", "a kept upper layer is there the next time")
    }

    @Test func readWriteBindAndReadOnlyBind() throws {
        let shared = try TemporaryDirectory()
        #expect(CLI.run("run --rootfs \(rootfs) --bind \(shared.path):/data:rw -- sh -c 'echo w > /data/f'").status == 0)
        #expect(FileSystemProbe.read(shared.path + "/f") == "w\n")
        let ro = CLI.run("run --rootfs \(rootfs) --bind \(shared.path):/data -- sh -c 'echo w > /data/g'")
        #expect(ro.status != 0)
        #expect(!FileSystemProbe.exists(shared.path + "/g"))
    }
}
