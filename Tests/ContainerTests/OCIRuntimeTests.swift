// OCIRuntimeTests: the OCI runtime command line (`swiftlet-runtime`, a symlink to the swiftlet binary)
// as podman and conmon call it: the create/start/state/kill/delete lifecycle with its state JSON and
// pid file, exec, hooks, and what must fail in one line leaving nothing behind (two creates with one ID,
// a state directory left by a killed runtime, hostile config.json). Unit tests of the pieces first; the
// end-to-end ones need root, the busybox rootfs and the binaries.
@testable import Container
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

struct OCIRuntimePartsTests {
    @Test func signalsByNameAndNumber() throws {
        #expect(try OCIRuntime.signalNumber("SIGTERM") == SIGTERM)
        #expect(try OCIRuntime.signalNumber("kill") == SIGKILL)
        #expect(try OCIRuntime.signalNumber("10") == 10)
        #expect(throws: ContainerError.self) { try OCIRuntime.signalNumber("SIGNOPE") }
        #expect(throws: ContainerError.self) { try OCIRuntime.signalNumber("0") }
    }

    @Test func containerIDsCannotLeaveTheStateDirectory() {
        for bad in ["", ".", "..", "a/b", "../x", "a b", String(repeating: "x", count: 1025)] {
            #expect(throws: ContainerError.self, "\(bad.prefix(20))") { try OCIRuntime.checkID(bad) }
        }
        #expect((try? OCIRuntime.checkID("libpod-3ff5_a.b+c")) == "libpod-3ff5_a.b+c")
    }

    @Test func cgroupsPathIsCgroupfsOnly() throws {
        #expect(try OCIRuntime.cgroupPath("/libpod_parent/libpod-1") == "/libpod_parent/libpod-1")
        #expect(try OCIRuntime.cgroupPath("a//b/") == "/a/b")
        let systemd = #expect(throws: ContainerError.self) { try OCIRuntime.cgroupPath("machine.slice:libpod:1") }
        #expect(systemd?.description.contains("--cgroup-manager cgroupfs") == true)
        #expect(throws: ContainerError.self) { try OCIRuntime.cgroupPath("/a/../../b") }
        #expect(throws: ContainerError.self) { try OCIRuntime.cgroupPath("/") }
    }

    @Test func onlyNamespacedSysctlsWithTheirNamespace() throws {
        var spec = ContainerSpec.standard(rootPath: "/r", args: ["true"])
        spec.sysctls = ["net.ipv4.ip_forward": "1", "kernel.shmmax": "1000", "kernel.hostname": "x"]
        try OCIRuntime.checkSysctls(spec)
        spec.sysctls = ["kernel.panic": "1"]
        let host = #expect(throws: ContainerError.self) { try OCIRuntime.checkSysctls(spec) }
        #expect(host?.description.contains("would change the host") == true)
        spec.sysctls = ["net.ipv4.ip_forward": "1"]
        spec.namespaces.removeAll { $0 == .network }
        #expect(throws: ContainerError.self) { try OCIRuntime.checkSysctls(spec) }
        spec.sysctls = ["net/../../kernel.panic": "1"]
        #expect(throws: ContainerError.self) { try OCIRuntime.checkSysctls(spec) }
    }

    @Test func hooksAreReadAndCheckedByField() throws {
        let good = try JSONParser.parse(#"{"hooks": {"prestart": [{"path": "/bin/true", "args": ["true", "x"], "timeout": 5}]}}"#)
        let hooks = try OCIHooks(document: good)
        #expect(hooks.hooks["prestart"] == [OCIHook(path: "/bin/true", args: ["true", "x"], env: [], timeoutSeconds: 5)])
        for (text, field) in [(#"{"hooks": {"prestrat": []}}"#, "hooks.prestrat"),
                              (#"{"hooks": {"poststop": [{"path": "relative"}]}}"#, "hooks.poststop[0].path"),
                              (#"{"hooks": {"poststop": [{"path": "/x", "timeout": 0}]}}"#, "hooks.poststop[0].timeout"),
                              (#"{"hooks": []}"#, "hooks")] {
            let error = #expect(throws: ContainerError.self) { try OCIHooks(document: try JSONParser.parse(text)) }
            #expect(error?.description.hasPrefix("config.json: \(field):") == true, "\(error?.description ?? "")")
        }
    }

    @Test func aHookGetsTheStateOnStdinAndItsFailureIsAnError() throws {
        let directory = try TemporaryDirectory()
        let hook = OCIHook(path: "/bin/sh", args: ["sh", "-c", "cat > \(directory.path)/seen"], env: [], timeoutSeconds: 10)
        let state = OCIState(id: "h1", pid: 42, startTime: 1, bundle: "/b", rootfs: "/b/rootfs", created: "now")
        try OCIHooks.run(hook, kind: "prestart", input: state.document(status: "created").formatted())
        let seen = try JSONParser.parse(ProcessRunner.readFile(directory.path + "/seen"))
        #expect(seen == state.document(status: "created"))
        let failing = OCIHook(path: "/bin/sh", args: ["sh", "-c", "exit 3"], env: [], timeoutSeconds: nil)
        let error = #expect(throws: ContainerError.self) { try OCIHooks.run(failing, kind: "poststart", input: "{}") }
        #expect(error?.description == "hook poststart: /bin/sh exited with status 3")
        let slow = OCIHook(path: "/bin/sleep", args: ["sleep", "30"], env: [], timeoutSeconds: 1)
        let timeout = #expect(throws: ContainerError.self) { try OCIHooks.run(slow, kind: "prestart", input: "") }
        #expect(timeout?.description.contains("did not finish within 1 s") == true)
    }

    @Test func aBundleBecomesAMicroVMsCommandAndSize() throws {
        var spec = ContainerSpec.standard(rootPath: "/r", args: ["echo", "a b"])
        spec.process.env = ["PATH=/bin", "X=1"]
        spec.process.cwd = "/tmp"
        let mounts = ["chroot", "/container", "sh", "-c", OCIVirtualMachine.mountsThenExec, "sh"]
        #expect(OCIVirtualMachine.guestCommand(spec.process) == mounts + ["env", "-i", "PATH=/bin", "X=1",
                                                                          "sh", "-c", "cd \"$0\" && exec \"$@\"", "/tmp", "echo", "a b"])
        spec.process.user = .init(uid: 1000, gid: 100)
        #expect(OCIVirtualMachine.guestCommand(spec.process).starts(with: mounts + ["nsenter", "-S", "1000", "-G", "100", "env"]),
                "the mounts as root, then the user switch")
        #expect(OCIVirtualMachine.memoryMiB(spec) == 128)
        let vmm = OCIVirtualMachine.vmmArguments(spec: spec, kernel: "/k", initrd: "/i", directory: "/d")
        let separator = try #require(vmm.firstIndex(of: "--"))
        #expect(vmm[..<separator].contains("--forward-signals"), "kill reaches the command in the guest: \(vmm)")
        #expect(Array(vmm[(separator + 1)...]) == OCIVirtualMachine.guestCommand(spec.process))
        spec.resources.memoryBytes = 32 << 20
        #expect(OCIVirtualMachine.memoryMiB(spec) == 64, "no less than the minimal kernel needs")
        spec.resources.memoryBytes = 300 << 20
        #expect(OCIVirtualMachine.memoryMiB(spec) == 300)
        #expect(OCIVirtualMachine.cpus(spec) == 1)
        spec.resources.cpuQuotaMicroseconds = 150_000
        spec.resources.cpuPeriodMicroseconds = 100_000
        #expect(OCIVirtualMachine.cpus(spec) == 2, "1.5 CPUs round up")
        spec.resources.cpuQuotaMicroseconds = Int64.max
        spec.resources.cpuPeriodMicroseconds = UInt64.max
        #expect(OCIVirtualMachine.cpus(spec) == 1)
    }

    @Test func stateJSONHasTheSpecsFieldsAndRoundTrips() throws {
        var state = OCIState(id: "c1", pid: 1234, startTime: 99, bundle: "/b", rootfs: "/b/rootfs", created: OCIState.timestamp())
        state.annotations = [("a", "b")]
        state.cgroupDirectories = ["/sys/fs/cgroup/pids/x"]
        guard case .object(let members) = state.document(status: "running") else { Issue.record("not an object"); return }
        #expect(members.map(\.0).starts(with: ["ociVersion", "id", "status", "pid", "bundle"]))
        #expect(members.contains { $0.0 == "annotations" })
        #expect(OCIState.parse(try JSONParser.parse(state.stored().formatted())) == state)
        #expect(state.document(status: "stopped").compact().contains(#""pid":0"#))
        #expect(!state.isAlive, "pid 1234 with start time 99 is not this container")
    }
}

/// The runtime as podman's conmon runs it: a symlink named swiftlet-runtime, a private --root.
final class RuntimeFixture {
    let directory: TemporaryDirectory
    let bundle: String
    var root: String { directory.path + "/state" }
    var binary: String { directory.path + "/swiftlet-runtime" }

    init(args: [String] = ["sh", "-c", "echo started; sleep 30"], edit: (inout String) -> Void = { _ in }) throws {
        directory = try TemporaryDirectory()
        symlink(CLI.swiftlet, directory.path + "/swiftlet-runtime")
        bundle = directory.path + "/bundle"
        mkdir(bundle, 0o755)
        var text = ContainerSpec.ociTemplate(rootless: false).formatted()
        text = text.replacingFirst("\"terminal\": true", with: "\"terminal\": false")
        text = text.replacingFirst("\"path\": \"rootfs\"", with: "\"path\": \"\(Fixtures.rootfsPath)\"")
        let quoted = args.map { JSONValue.quote($0) }.joined(separator: ", ")
        text = text.replacingFirst("\"args\": [\n\t\t\t\"sh\"\n\t\t]", with: "\"args\": [\(quoted)]")
        edit(&text)
        try directory.write(text, to: "bundle/config.json")
    }

    /// `swiftlet-runtime --root ROOT ARGUMENTS`, output in files (a created container keeps its stdio).
    func run(_ arguments: String) -> (status: Int32, stdout: String, stderr: String) {
        let out = directory.path + "/out", err = directory.path + "/err"
        let (status, _) = Shell.run("cd '\(bundle)' && '\(binary)' --root '\(root)' \(arguments) >'\(out)' 2>'\(err)' </dev/null")
        return (status, FileSystemProbe.read(out) ?? "", FileSystemProbe.read(err) ?? "")
    }

    func status(_ id: String) -> String? {
        guard let document = try? JSONParser.parse(run("state \(id)").stdout), case .object(let members) = document,
              case .string(let status)? = members.first(where: { $0.0 == "status" })?.1 else { return nil }
        return status
    }

    deinit {
        for id in (try? FileSystem.list(root)) ?? [] { _ = run("delete --force \(id)") }
    }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = firstRange(of: target) else { return self }
        var copy = self
        copy.replaceSubrange(range, with: replacement)
        return copy
    }
}

@Suite(.serialized, .changesHostState, .enabled(if: CLI.available, "needs root, the busybox rootfs and the swiftlet binaries"))
struct OCIRuntimeLifecycleTests {
    @Test func createStartStateKillDelete() throws {
        let runtime = try RuntimeFixture()
        let created = runtime.run("create --bundle . --pid-file pid c1")
        #expect(created.status == 0, "\(created.stderr)")
        let pid = Int32(ProcessRunner.readFile(runtime.bundle + "/pid")) ?? 0
        #expect(pid > 0)
        #expect(runtime.status("c1") == "created")
        let state = try JSONParser.parse(runtime.run("state c1").stdout)
        guard case .object(let members) = state else { Issue.record("state is not an object"); return }
        #expect(members.first { $0.0 == "pid" }?.1 == .number(Double(pid)))
        #expect(members.first { $0.0 == "bundle" }?.1 == .string(runtime.bundle))
        #expect(runtime.run("list").stdout.contains("c1\t\(pid)\tcreated"))
        #expect(runtime.run("start c1").status == 0)
        #expect(runtime.status("c1") == "running")
        #expect(runtime.run("start c1").stderr == "swiftlet-runtime: start: container c1 is running, not created\n")
        #expect(runtime.run("ps --format json c1").stdout == "[\(pid)]\n")
        let busy = runtime.run("delete c1")
        #expect(busy.status == 1)
        #expect(busy.stderr == "swiftlet-runtime: delete: container c1 is running (stop it first or use delete --force)\n")
        #expect(runtime.run("kill c1 KILL").status == 0)
        #expect(pollUntil(timeout: 10) { runtime.status("c1") == "stopped" })
        let cgroups = OCIState.parse(try JSONParser.parse(ProcessRunner.readFile(runtime.root + "/c1/state.json")))?.cgroupDirectories ?? []
        #expect(!cgroups.isEmpty && cgroups.allSatisfy { FileSystem.exists($0) })
        #expect(runtime.run("delete c1").status == 0)
        #expect(cgroups.allSatisfy { !FileSystem.exists($0) }, "the container's cgroups are removed")
        #expect(((try? FileSystem.list(runtime.root)) ?? []).isEmpty)
        #expect(runtime.run("state c1").stderr == "swiftlet-runtime: state: container c1 does not exist\n")
    }

    @Test func runWaitsAndExitsWithTheContainersStatus() throws {
        let runtime = try RuntimeFixture(args: ["sh", "-c", "echo out; exit 9"])
        let r = runtime.run("run --bundle . r1")
        #expect(r.status == 9, "\(r.stderr)")
        #expect(r.stdout == "out\n")
        #expect(((try? FileSystem.list(runtime.root)) ?? []).isEmpty, "run deletes the container")
    }

    @Test func execRunsInTheContainersNamespaces() throws {
        let runtime = try RuntimeFixture()
        #expect(runtime.run("create e1").status == 0)
        #expect(runtime.run("start e1").status == 0)
        let r = runtime.run("exec e1 sh -c 'hostname; ps -o comm | grep -c ^sleep$; exit 4'")
        #expect(r.status == 4, "\(r.stderr)")
        #expect(r.stdout == "swiftlet\n1\n", "the container's hostname, and its PID namespace's sleep")
        let missing = runtime.run("exec e1 no-such-command")
        #expect(missing.status == 127)
        #expect(missing.stderr.hasPrefix("swiftlet-runtime: exec: no-such-command: command not found"))
    }

    @Test func aCommandThatIsNotThereFailsCreateAndLeavesNothing() throws {
        let runtime = try RuntimeFixture(args: ["no-such-command"])
        let r = runtime.run("create n1")
        #expect(r.status == 127)
        #expect(r.stderr == "swiftlet-runtime: exec: no-such-command: command not found in the container (No such file or directory)\n")
        #expect(((try? FileSystem.list(runtime.root)) ?? []).isEmpty)
    }

    @Test func twoCreatesWithOneIDAndAStaleStateDirectory() throws {
        let runtime = try RuntimeFixture()
        #expect(runtime.run("create d1").status == 0)
        let second = runtime.run("create d1")
        #expect(second.status == 1)
        #expect(second.stderr == "swiftlet-runtime: create: container d1 already exists\n")
        #expect(runtime.status("d1") == "created", "the first container is untouched")
        // A runtime killed during create leaves a directory without state.json.
        mkdir(runtime.root + "/stale", 0o700)
        let stale = runtime.run("create stale")
        #expect(stale.stderr.contains("left by a runtime that was killed; remove it with `swiftlet-runtime delete --force stale`"))
        #expect(runtime.run("state stale").status == 1)
        #expect(runtime.run("delete --force stale").status == 0)
        #expect(runtime.run("create stale").status == 0)
        // A state.json that is not ours (truncated, or garbage): one line, and --force still removes it.
        mkdir(runtime.root + "/garbled", 0o700)
        try runtime.directory.write("{\"id\": 1, ", to: "state/garbled/state.json")
        let garbled = runtime.run("state garbled")
        #expect(garbled.status == 1)
        #expect(garbled.stderr.split(separator: "\n").count == 1 && garbled.stderr.contains("has no usable state"))
        #expect(runtime.run("delete garbled").status == 1, "without --force a leftover stays for a person to look at")
        #expect(runtime.run("delete --force garbled").status == 0)
        #expect(!FileSystemProbe.exists(runtime.root + "/garbled"))
    }

    @Test func hooksRunAtTheirPointsWithTheState() throws {
        let log = try TemporaryDirectory()
        func hook(_ name: String) -> String {
            #"{"path": "/bin/sh", "args": ["sh", "-c", "grep -o '\"status\": \"[a-z]*\"' >> \#(log.path)/hooks; echo \#(name) >> \#(log.path)/hooks"]}"#
        }
        let runtime = try RuntimeFixture(args: ["true"]) { text in
            text = text.replacingFirst("\"hostname\":", with: """
                "hooks": {"prestart": [\(hook("prestart"))], "createRuntime": [\(hook("createRuntime"))],
                "poststart": [\(hook("poststart"))], "poststop": [\(hook("poststop"))]},
                "hostname":
                """)
        }
        #expect(runtime.run("create k1").status == 0)
        #expect(runtime.run("start k1").status == 0)
        #expect(pollUntil(timeout: 10) { runtime.status("k1") == "stopped" })
        #expect(runtime.run("delete k1").status == 0)
        #expect(ProcessRunner.readFile(log.path + "/hooks").split(separator: "\n") == [
            "\"status\": \"created\"", "prestart", "\"status\": \"created\"", "createRuntime",
            "\"status\": \"running\"", "poststart", "\"status\": \"stopped\"", "poststop",
        ])
        let failing = try RuntimeFixture { text in
            text = text.replacingFirst("\"hostname\":", with: #""hooks": {"prestart": [{"path": "/bin/false"}]}, "hostname":"#)
        }
        let r = failing.run("create k2")
        #expect(r.status == 1)
        #expect(r.stderr == "swiftlet-runtime: hook prestart: /bin/false exited with status 1\n")
        #expect(((try? FileSystem.list(failing.root)) ?? []).isEmpty, "a failed hook removes the container")
    }

    @Test func hostileConfigsFailInOneLineAndLeaveNothing() throws {
        let cases: [(String, (inout String) -> Void, String)] = [
            ("namespace", { $0 = $0.replacingFirst("{\n\t\t\t\t\"type\": \"pid\"", with: "{\n\t\t\t\t\"type\": \"time\"") },
             "swiftlet-runtime: config.json: linux.namespaces[0].type: namespace type \"time\" is not supported (pid, network, mount, ipc, uts, user, cgroup)\n"),
            ("type", { $0 = $0.replacingFirst("\"cwd\": \"/\"", with: "\"cwd\": 7") },
             "swiftlet-runtime: config.json: process.cwd: expected a string, found a number\n"),
            ("sysctl", { $0 = $0.replacingFirst("\"linux\": {", with: #""linux": {"sysctl": {"kernel.panic": "1"},"#) },
             "swiftlet-runtime: config.json: linux.sysctl: kernel.panic is not namespaced; setting it would change the host\n"),
            ("cgroups", { $0 = $0.replacingFirst("\"linux\": {", with: #""linux": {"cgroupsPath": "/../../x","#) },
             "swiftlet-runtime: config.json: linux.cgroupsPath \"/../../x\" is not a cgroup path\n"),
            ("nesting", { $0 = String(repeating: "[", count: 100_000) },
             ""),
        ]
        for (name, edit, expected) in cases {
            let runtime = try RuntimeFixture(edit: edit)
            let r = runtime.run("create h-\(name)")
            #expect(r.status == 1, "\(name): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(name): \(r.stderr)")
            if !expected.isEmpty { #expect(r.stderr == expected) }
            #expect(((try? FileSystem.list(runtime.root)) ?? []).isEmpty, "\(name): nothing left in the state directory")
        }
    }

    @Test func namespacedSysctlsAreSetInsideOnly() throws {
        let host = FileSystemProbe.read("/proc/sys/net/ipv4/ip_default_ttl")
        let runtime = try RuntimeFixture(args: ["cat", "/proc/sys/net/ipv4/ip_default_ttl"]) { text in
            text = text.replacingFirst("\"linux\": {", with: #""linux": {"sysctl": {"net.ipv4.ip_default_ttl": "42"},"#)
        }
        let r = runtime.run("run s1")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "42\n")
        #expect(FileSystemProbe.read("/proc/sys/net/ipv4/ip_default_ttl") == host, "the host's value is unchanged")
    }

    @Test func systemdCgroupIsRefused() throws {
        let runtime = try RuntimeFixture()
        let r = runtime.run("--systemd-cgroup create s1")
        #expect(r.status == 1)
        #expect(r.stderr.hasPrefix("swiftlet-runtime: --systemd-cgroup: systemd cgroup management is not supported"))
    }

    @Test func errorsGoToTheLogAsJSONLines() throws {
        let runtime = try RuntimeFixture(args: ["no-such-command"])
        let log = runtime.directory.path + "/log.json"
        _ = runtime.run("--log \(log) --log-format json create l1")
        let lines = ProcessRunner.readFile(log).split(separator: "\n")
        #expect(lines.dropLast().allSatisfy { $0.hasPrefix(#"{"level":"warning""#) }, "\(lines)")
        let line = try JSONParser.parse(String(lines.last ?? ""))
        guard case .object(let members) = line else { Issue.record("not an object"); return }
        #expect(members.map(\.0) == ["level", "msg", "time"])
        #expect(members[1].1 == .string("exec: no-such-command: command not found in the container (No such file or directory)"))
    }

    @Test func featuresDescribeTheRuntime() throws {
        let runtime = try RuntimeFixture()
        let document = try JSONParser.parse(runtime.run("features").stdout)
        guard case .object(let members) = document else { Issue.record("not an object"); return }
        #expect(members.first { $0.0 == "hooks" }?.1 == .array(OCIHooks.kinds.map { .string($0) }))
    }
}
