// ContainerSpecTests: config.json and CLI flags become the right ContainerSpec; bad input is one
// clear error naming the field or flag; unknown fields are warnings.
@testable import Container
import Testing
import TestSupport

@Suite struct ContainerSpecTests {
    func decode(_ text: String) throws(ContainerError) -> (ContainerSpec, [String]) {
        let document: JSONValue
        do {
            document = try JSONParser.parse(text)
        } catch {
            throw ContainerError(step: "config.json", error.description)
        }
        var warnings: [String] = []
        let spec = try ContainerSpec(oci: document, bundle: "/bundle") { warnings.append($0) }
        return (spec, warnings)
    }

    @Test func readsTheTemplateSpecWritesAsCrunDoes() throws {
        let text = ContainerSpec.ociTemplate(rootless: false).formatted()
        let (spec, warnings) = try decode(text)
        #expect(warnings.isEmpty)
        #expect(spec.rootPath == "/bundle/rootfs")
        #expect(spec.rootReadonly)
        #expect(spec.process.args == ["sh"])
        #expect(spec.process.terminal)
        #expect(spec.process.noNewPrivileges)
        #expect(spec.process.capabilities.bounding == .ociDefault)
        #expect(spec.process.capabilities.inheritable.isEmpty)
        #expect(spec.process.rlimits == [.init(type: "RLIMIT_NOFILE", soft: 1024, hard: 1024)])
        #expect(Set(spec.namespaces) == [.pid, .network, .ipc, .uts, .mount, .cgroup])
        #expect(spec.maskedPaths == CrunTemplate.maskedPaths)
        #expect(spec.readonlyPaths == CrunTemplate.readonlyPaths)
        #expect(spec.mounts.map(\.destination) == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"])
    }

    @Test func rootlessTemplateMapsTheCallersIDs() throws {
        let text = ContainerSpec.ociTemplate(rootless: true, host: HostIdentity(uid: 1234, gid: 99)).formatted()
        let (spec, _) = try decode(text)
        #expect(spec.namespaces.contains(.user))
        #expect(spec.uidMappings == [IDMapping(containerID: 0, hostID: 1234, size: 1)])
        #expect(spec.gidMappings == [IDMapping(containerID: 0, hostID: 99, size: 1)])
        #expect(!(spec.mounts.first { $0.destination == "/dev/pts" }?.options.contains("gid=5") ?? true))
    }

    @Test func unknownAndUnsupportedFieldsAreWarnings() throws {
        let (spec, warnings) = try decode("""
        {"ociVersion": "1.0.2", "root": {"path": "/r"}, "hooks": {}, "colour": "blue",
         "process": {"args": ["sh"], "cwd": "/", "apparmorProfile": "x"},
         "linux": {"sysctl": {}, "resources": {"memory": {"limit": 33554432, "swap": 1}, "pids": {"limit": 32}}}}
        """)
        #expect(spec.resources.memoryBytes == 32 << 20)
        #expect(spec.resources.pids == 32)
        #expect(warnings.contains("config.json: ignoring unknown field colour"))
        #expect(!warnings.contains { $0.contains("hooks") }, "hooks are the OCI runtime's (OCIHooks)")
        #expect(warnings.contains("config.json: process.apparmorProfile is not supported by swiftlet; ignored"))
        #expect(!warnings.contains { $0.contains("sysctl") }, "linux.sysctl is read (ContainerSpec.sysctls)")
        #expect(warnings.contains("config.json: linux.resources.memory.swap is not supported by swiftlet; ignored"))
    }

    @Test func wrongTypesNameTheField() {
        func message(_ text: String) -> String? {
            do {
                _ = try decode(text)
                return nil
            } catch {
                return error.description
            }
        }
        let base = #""root": {"path": "r"}, "process": {"args": ["sh"], "cwd": "/""#
        #expect(message(#"{"root": {"path": "r"}, "process": {"args": ["sh", 3], "cwd": "/"}}"#)
            == "config.json: process.args[1]: expected a string, found a number")
        #expect(message("{\(base), \"user\": {\"uid\": -1}}}")
            == "config.json: process.user.uid: -1 is out of range (0...4294967295)")
        #expect(message(#"{"root": {"path": "r"}, "process": {"args": [], "cwd": "/"}}"#)
            == "config.json: process.args: must name a command")
        #expect(message(#"{"process": {"args": ["sh"], "cwd": "/"}}"#)
            == "config.json: root: missing (the bundle must name its root filesystem)")
        let time = message("{\(base)}, \"linux\": {\"namespaces\": [{\"type\": \"time\"}]}}") ?? ""
        #expect(time.contains("linux.namespaces[0].type: namespace type \"time\" is not supported"))
        let joined = message("{\(base)}, \"linux\": {\"namespaces\": [{\"type\": \"network\", \"path\": \"/x\"}]}}") ?? ""
        #expect(joined == "config.json: linux.namespaces[0].path: joining an existing namespace is not supported")
        #expect(message("{\(base), \"capabilities\": {\"bounding\": \"CAP_KILL\"}}}")
            == "config.json: process.capabilities.bounding: expected an array, found a string")
    }

    @Test func malformedConfigFileIsOneLineNamingTheField() throws {
        let directory = try TemporaryDirectory()
        let config = #"{"root": {"path": "rootfs"}, "process": {"args": ["sh"] "cwd": "/"}}"#
        try directory.write(config, to: "config.json")
        #expect {
            _ = try ContainerSpec.load(bundle: directory.path) { _ in }
        } throws: { error in
            let text = (error as? ContainerError)?.description ?? ""
            return text.hasPrefix("config.json: malformed JSON at line 1") && text.contains("in process.args") && !text.contains("\n")
        }
    }

    @Test func standardSpecIsRootOrRootless() {
        let root = ContainerSpec.standard(rootPath: "/r", args: ["sh"], host: HostIdentity(uid: 0, gid: 0))
        #expect(root.uidMappings == [.identity])
        #expect(root.namespaces == [.user, .pid, .mount, .uts, .ipc, .network, .cgroup])
        #expect(root.process.capabilities == .ociDefault)
        let rootless = ContainerSpec.standard(rootPath: "/r", args: ["sh"], host: HostIdentity(uid: 65534, gid: 65534))
        #expect(rootless.uidMappings == [IDMapping(containerID: 0, hostID: 65534, size: 1)])
    }

    @Test func runOptionsParseLikeTheUsageLine() throws {
        let options = try RunOptions.parse(["--rootfs", "/r", "--memory=64M", "--pids", "32", "--cpus", "0.5", "--hostname", "box",
                                            "--net", "host", "--read-only", "--init", "-t", "--", "sh", "-c", "echo hi"])
        #expect(options.rootfs == "/r")
        #expect(options.memory == "64M")
        #expect(options.network == .host)
        #expect(options.readOnly && options.initProcess && options.terminal)
        #expect(options.command == ["sh", "-c", "echo hi"])
        #expect(try RunOptions.parse(["--rootfs", "/r", "ls", "-l"]).command == ["ls", "-l"])
        #expect(throws: ContainerError.self) { try RunOptions.parse(["--frobnicate"]) }
        #expect(throws: ContainerError.self) { try RunOptions.parse(["--net", "bridge"]) }
        #expect(throws: ContainerError.self) { try RunOptions.parse(["--memory"]) }

        let spec = try options.makeSpec(host: HostIdentity(uid: 0, gid: 0)) { _ in }
        #expect(spec.resources == ResourceLimits(memoryBytes: 64 << 20, pids: 32, cpuQuotaMicroseconds: 50_000, cpuPeriodMicroseconds: 100_000))
        #expect(!spec.namespaces.contains(.network))
        #expect(spec.hostname == "box")
        #expect(spec.rootReadonly && spec.initProcess && spec.process.terminal)
        #expect(spec.process.env.contains("TERM=xterm"))
    }

    @Test func invalidSizesAndCountsAreRejected() throws {
        #expect(try ResourceLimits.parseMemory("64M") == 64 << 20)
        #expect(try ResourceLimits.parseMemory("1g") == 1 << 30)
        #expect(try ResourceLimits.parseMemory("2048KiB") == 2 << 20)
        #expect(try ResourceLimits.parseMemory("1048576") == 1 << 20)
        for bad in ["", "M", "-5M", "12Q", "0", "1k", "lots", "1e3M"] {
            #expect(throws: ContainerError.self, "memory \(bad)") { try ResourceLimits.parseMemory(bad) }
        }
        #expect(try ResourceLimits.parseCPUs("0.5") == 50_000)
        // 1e24 CPUs once trapped converting the quota to Int64 (issue 14): now "too large", like 4097.
        for bad in ["0", "-1", "x", "0.001", "", "4097", "1000000000000000000000000"] {
            #expect(throws: ContainerError.self, "cpus \(bad)") { try ResourceLimits.parseCPUs(bad) }
        }
        for bad in ["0", "-3", "ten", ""] {
            #expect(throws: ContainerError.self, "pids \(bad)") { try ResourceLimits.parsePids(bad) }
        }
        do {
            _ = try ResourceLimits.parseMemory("lots")
        } catch {
            #expect(error.description == "spec: --memory: invalid size \"lots\" (use a number with an optional K, M or G suffix, e.g. 64M)")
            #expect(error.exitStatus == 125)
        }
    }

    @Test func missingRootOrCommandIsAnError() {
        var options = RunOptions()
        options.command = ["sh"]
        #expect(throws: ContainerError.self) { try options.makeSpec { _ in } }
        options.rootfs = "/r"
        options.bundle = "/b"
        #expect(throws: ContainerError.self) { try options.makeSpec { _ in } }
        options.bundle = nil
        options.command = []
        #expect(throws: ContainerError.self) { try options.makeSpec { _ in } }
    }

    @Test func rootlessWithoutUserNamespaceIsRefused() throws {
        let directory = try TemporaryDirectory()
        var spec = ContainerSpec.standard(rootPath: directory.path, args: ["sh"], host: HostIdentity(uid: 1000, gid: 1000))
        spec.namespaces.removeAll { $0 == .user }
        #expect {
            _ = try Launcher.validate(spec, host: HostIdentity(uid: 1000, gid: 1000))
        } throws: { error in
            (error as? ContainerError)?.description == "user namespace: not running as root and the spec has no user namespace (rootless containers need one)"
        }
        spec = ContainerSpec.standard(rootPath: directory.path, args: ["sh"], host: HostIdentity(uid: 1000, gid: 1000))
        spec.uidMappings = [.identity]
        #expect(throws: ContainerError.self) { try Launcher.validate(spec, host: HostIdentity(uid: 1000, gid: 1000)) }
    }

    @Test func capabilityNamesAndMasks() {
        #expect(CapabilitySet.ociDefault.hex == "0000000020000420")
        #expect(Capability(name: "cap_sys_admin")?.number == 21)
        #expect(Capability(name: "NET_RAW")?.number == 13)
        #expect(Capability(name: "CAP_NOPE") == nil)
        #expect(CapabilitySet.ociDefault.names == ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"])
    }
}

/// crun 1.8.1's `crun spec` (Debian 12), written out: the paths its template masks and makes read-only.
/// `theTemplateIsCrunsWhereCrunIsInstalled` checks swiftlet's template against the installed crun itself.
enum CrunTemplate {
    static let maskedPaths = [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
    ]
    static let readonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
}

/// `crun spec` against `swiftlet container spec`'s template, field by field, as JSON. Swiftlet's template is
/// crun's with two differences it documents: hostname "swiftlet", and a cgroup namespace (so the container
/// sees its own cgroup as /); the capability lists are sets (crun lists them in another order).
@Suite struct CrunTemplateTests {
    static let crun = Prerequisite.tool("crun")

    static func field(_ value: JSONValue, _ path: String...) -> JSONValue? { field(value, path) }

    static func field(_ value: JSONValue, _ path: [String]) -> JSONValue? {
        var current = value
        for key in path {
            guard case let .object(fields) = current, let next = fields.first(where: { $0.0 == key })?.1 else { return nil }
            current = next
        }
        return current
    }

    static func strings(_ value: JSONValue?) -> [String] {
        guard case let .array(items)? = value else { return [] }
        return items.compactMap { if case let .string(s) = $0 { s } else { nil } }
    }

    @Test(.enabled(if: Prerequisite.available(crun != nil), "crun is not installed (apt-get install crun; setup.sh does)"),
          arguments: [false, true])
    func theTemplateIsCrunsWhereCrunIsInstalled(rootless: Bool) throws {
        let crun = try #require(Self.crun, "crun is not installed")
        let directory = try TemporaryDirectory()
        let (status, output) = Shell.run("cd '\(directory.path)' && '\(crun)' spec \(rootless ? "--rootless" : "")", deadline: 60)
        try #require(status == 0, "crun spec: \(output)")
        let theirs = try JSONParser.parse(FileSystemProbe.read(directory.path + "/config.json") ?? "")
        let ours = ContainerSpec.ociTemplate(rootless: rootless, host: HostIdentity(uid: rootless ? 1000 : 0, gid: rootless ? 1000 : 0))
        for path in [["linux", "maskedPaths"], ["linux", "readonlyPaths"], ["mounts"], ["root"], ["ociVersion"],
                     ["process", "args"], ["process", "env"], ["process", "cwd"], ["process", "terminal"], ["process", "user"],
                     ["process", "rlimits"], ["process", "noNewPrivileges"], ["process", "capabilities", "inheritable"]] {
            #expect(Self.field(ours, path) == Self.field(theirs, path), "\(path.joined(separator: ".")): crun's \(String(describing: Self.field(theirs, path)))")
        }
        for set in ["bounding", "effective", "permitted", "ambient"] {
            #expect(Set(Self.strings(Self.field(ours, "process", "capabilities", set))) == Set(Self.strings(Self.field(theirs, "process", "capabilities", set))),
                    "capabilities.\(set)")
        }
        var namespaces = Self.field(theirs, "linux", "namespaces")
        if case var .array(items)? = namespaces {
            items.append(.object([("type", .string("cgroup"))]))
            namespaces = .array(items)
        }
        func types(_ value: JSONValue?) -> Set<String> {
            guard case let .array(items)? = value else { return [] }
            return Set(items.compactMap { Self.field($0, "type") }.compactMap { if case let .string(s) = $0 { s } else { nil } })
        }
        #expect(types(Self.field(ours, "linux", "namespaces")) == types(namespaces), "crun's namespaces and cgroup")
        #expect(Self.field(ours, "hostname") == .string("swiftlet"))
        #expect(Self.strings(Self.field(ours, "linux", "maskedPaths")) == CrunTemplate.maskedPaths, "the literal list above is crun's")
    }
}

/// A directory under /tmp removed when the value goes away.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/swiftlet-test-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw ContainerError(step: "test", "mkdtemp failed")
        }
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    func write(_ text: String, to name: String) throws {
        guard let file = fopen(path + "/" + name, "w") else { throw ContainerError(step: "test", "cannot write \(name)") }
        fputs(text, file)
        fclose(file)
    }

    deinit {
        _ = Shell.run("rm -rf '\(path)'")
    }
}

#if canImport(Glibc)
import Glibc
#endif
