// ContainerSpec+OCI: reading and writing an OCI runtime bundle's config.json (runtime-spec
// config.md and config-linux.md), for the subset Swiftlet implements: process (args, env, cwd,
// terminal, user, capabilities, rlimits, noNewPrivileges), root (path, readonly), hostname, mounts,
// linux (namespaces, uid/gid mappings, resources memory/pids/cpu, masked and read-only paths, seccomp).
// Unknown fields are ignored with a warning; fields the spec defines but Swiftlet does not implement
// are ignored with a warning that says so; a value of the wrong type is an error naming the field.

extension ContainerSpec {
    /// Reads a config.json document. `bundle` resolves a relative root.path; `warn` receives one line
    /// per ignored field.
    public init(oci document: JSONValue, bundle: String, warn: (String) -> Void) throws(ContainerError) {
        var reader = OCIReader()
        self = try reader.spec(document, bundle: bundle)
        for warning in reader.warnings { warn(warning) }
    }

    /// The largest config.json swiftlet reads: 16 MiB. `crun spec` writes about 3 KiB; annotations and
    /// long seccomp profiles stay far below this.
    public static let configLimit = 16 << 20

    /// Reads `bundle`/config.json from disk: a regular file of at most `configLimit` bytes.
    public static func load(bundle: String, warn: (String) -> Void) throws(ContainerError) -> ContainerSpec {
        let path = bundle.hasSuffix("/") ? bundle + "config.json" : bundle + "/config.json"
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readRegularFile(path, limit: configLimit)
        } catch {
            if case let .system(errno) = error { throw ContainerError(step: "bundle", "cannot read \(path)", errno: errno) }
            throw ContainerError(step: "bundle", "cannot read \(path): \(error)")
        }
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes)
        } catch {
            throw ContainerError(step: "config.json", error.description)
        }
        return try ContainerSpec(oci: document, bundle: bundle, warn: warn)
    }
}

/// Walks the document, collecting warnings and failing on the first type error.
struct OCIReader {
    var warnings: [String] = []

    func fail(_ field: String, _ message: String) -> ContainerError {
        ContainerError(step: "config.json", "\(field): \(message)")
    }

    func expected(_ what: String, _ value: JSONValue, _ field: String) -> ContainerError {
        fail(field, "expected \(what), found \(value.kind)")
    }

    /// An object's members; members not in `known` or `unsupported` are warned about.
    mutating func object(_ value: JSONValue, _ field: String, known: Set<String>,
                                 unsupported: Set<String> = [], silent: Set<String> = []) throws(ContainerError) -> [String: JSONValue] {
        guard case .object(let members) = value else { throw expected("an object", value, field) }
        var result: [String: JSONValue] = [:]
        for (key, member) in members {
            let name = field.isEmpty ? key : "\(field).\(key)"
            if known.contains(key) {
                result[key] = member
            } else if silent.contains(key) {
                continue
            } else if unsupported.contains(key) {
                warnings.append("config.json: \(name) is not supported by swiftlet; ignored")
            } else {
                warnings.append("config.json: ignoring unknown field \(name)")
            }
        }
        return result
    }

    func string(_ value: JSONValue, _ field: String) throws(ContainerError) -> String {
        guard case .string(let text) = value else { throw expected("a string", value, field) }
        return text
    }

    private func bool(_ value: JSONValue, _ field: String) throws(ContainerError) -> Bool {
        guard case .bool(let flag) = value else { throw expected("true or false", value, field) }
        return flag
    }

    func integer<T: FixedWidthInteger>(_ value: JSONValue, _ field: String, as: T.Type) throws(ContainerError) -> T {
        guard case .number(let number) = value else { throw expected("a number", value, field) }
        guard number == number.rounded() else { throw fail(field, "\(number) is not a whole number") }
        guard let result = T(exactly: number) else {
            let shown = abs(number) < 1e18 ? String(Int64(number)) : "\(number)"
            throw fail(field, "\(shown) is out of range (\(T.min)...\(T.max))")
        }
        return result
    }

    func array(_ value: JSONValue, _ field: String) throws(ContainerError) -> [JSONValue] {
        guard case .array(let elements) = value else { throw expected("an array", value, field) }
        return elements
    }

    func strings(_ value: JSONValue, _ field: String) throws(ContainerError) -> [String] {
        var result: [String] = []
        for (i, element) in try array(value, field).enumerated() { result.append(try string(element, "\(field)[\(i)]")) }
        return result
    }

    mutating func spec(_ document: JSONValue, bundle: String) throws(ContainerError) -> ContainerSpec {
        let top = try object(document, "", known: ["ociVersion", "process", "root", "hostname", "mounts", "linux"],
                             unsupported: ["domainname", "solaris", "windows", "vm", "zos"], silent: ["annotations", "hooks"])
        if let version = top["ociVersion"] {
            let text = try string(version, "ociVersion")
            if !text.hasPrefix("1.") { warnings.append("config.json: ociVersion \(text) is not 1.x; reading it as 1.0") }
        }
        guard let rootValue = top["root"] else { throw fail("root", "missing (the bundle must name its root filesystem)") }
        let root = try object(rootValue, "root", known: ["path", "readonly"])
        guard let pathValue = root["path"] else { throw fail("root.path", "missing") }
        var rootPath = try string(pathValue, "root.path")
        if rootPath.isEmpty { throw fail("root.path", "must not be empty") }
        if !rootPath.hasPrefix("/") { rootPath = (bundle.hasSuffix("/") ? bundle : bundle + "/") + rootPath }

        var spec = ContainerSpec(rootPath: rootPath)
        if let readonly = root["readonly"] { spec.rootReadonly = try bool(readonly, "root.readonly") }
        guard let processValue = top["process"] else { throw fail("process", "missing (the bundle must say what to run)") }
        spec.process = try process(processValue)
        if let hostname = top["hostname"] { spec.hostname = try string(hostname, "hostname") }
        if let mounts = top["mounts"] {
            for (i, element) in try array(mounts, "mounts").enumerated() {
                spec.mounts.append(try mount(element, "mounts[\(i)]"))
            }
        }
        if let linux = top["linux"] { try readLinux(linux, into: &spec) }
        return spec
    }

    mutating func process(_ value: JSONValue) throws(ContainerError) -> ContainerSpec.Process {
        let fields = try object(value, "process",
                                known: ["terminal", "user", "args", "env", "cwd", "capabilities", "rlimits", "noNewPrivileges"],
                                unsupported: ["consoleSize", "commandLine", "apparmorProfile", "oomScoreAdj", "selinuxLabel",
                                              "ioPriority", "scheduler", "execCPUAffinity"])
        var process = ContainerSpec.Process()
        process.capabilities = ContainerSpec.Capabilities(bounding: [], effective: [], inheritable: [], permitted: [], ambient: [])
        process.noNewPrivileges = false
        if let terminal = fields["terminal"] { process.terminal = try bool(terminal, "process.terminal") }
        if let user = fields["user"] {
            let userFields = try object(user, "process.user", known: ["uid", "gid", "additionalGids"], unsupported: ["umask", "username"])
            if let uid = userFields["uid"] { process.user.uid = try integer(uid, "process.user.uid", as: UInt32.self) }
            if let gid = userFields["gid"] { process.user.gid = try integer(gid, "process.user.gid", as: UInt32.self) }
            if let groups = userFields["additionalGids"] {
                for (i, group) in try array(groups, "process.user.additionalGids").enumerated() {
                    process.user.additionalGids.append(try integer(group, "process.user.additionalGids[\(i)]", as: UInt32.self))
                }
            }
        }
        guard let args = fields["args"] else { throw fail("process.args", "missing") }
        process.args = try strings(args, "process.args")
        if process.args.isEmpty { throw fail("process.args", "must name a command") }
        if let env = fields["env"] {
            process.env = try strings(env, "process.env")
            for (i, entry) in process.env.enumerated() where !entry.contains("=") {
                throw fail("process.env[\(i)]", "\"\(entry)\" is not NAME=VALUE")
            }
        }
        guard let cwd = fields["cwd"] else { throw fail("process.cwd", "missing") }
        process.cwd = try string(cwd, "process.cwd")
        if !process.cwd.hasPrefix("/") { throw fail("process.cwd", "\"\(process.cwd)\" is not an absolute path") }
        if let capabilities = fields["capabilities"] {
            let sets = try object(capabilities, "process.capabilities", known: ["bounding", "effective", "inheritable", "permitted", "ambient"])
            func set(_ name: String, _ reader: inout OCIReader) throws(ContainerError) -> CapabilitySet {
                guard let value = sets[name] else { return [] }
                var result = CapabilitySet()
                for (i, capabilityName) in try reader.strings(value, "process.capabilities.\(name)").enumerated() {
                    if let capability = Capability(name: capabilityName) {
                        result.insert(capability)
                    } else {
                        reader.warnings.append("config.json: process.capabilities.\(name)[\(i)]: unknown capability \(capabilityName); ignored")
                    }
                }
                return result
            }
            process.capabilities.bounding = try set("bounding", &self)
            process.capabilities.effective = try set("effective", &self)
            process.capabilities.inheritable = try set("inheritable", &self)
            process.capabilities.permitted = try set("permitted", &self)
            process.capabilities.ambient = try set("ambient", &self)
        }
        if let rlimits = fields["rlimits"] {
            for (i, element) in try array(rlimits, "process.rlimits").enumerated() {
                let field = "process.rlimits[\(i)]"
                let limit = try object(element, field, known: ["type", "soft", "hard"])
                guard let type = limit["type"], let soft = limit["soft"], let hard = limit["hard"] else {
                    throw fail(field, "needs type, soft and hard")
                }
                let name = try string(type, "\(field).type")
                guard RlimitResource.number(name) != nil else { throw fail("\(field).type", "unknown resource \(name)") }
                process.rlimits.append(.init(type: name, soft: try integer(soft, "\(field).soft", as: UInt64.self),
                                             hard: try integer(hard, "\(field).hard", as: UInt64.self)))
            }
        }
        if let nnp = fields["noNewPrivileges"] { process.noNewPrivileges = try bool(nnp, "process.noNewPrivileges") }
        return process
    }

    private mutating func mount(_ value: JSONValue, _ field: String) throws(ContainerError) -> ContainerSpec.Mount {
        let fields = try object(value, field, known: ["destination", "type", "source", "options"], unsupported: ["uidMappings", "gidMappings"])
        guard let destination = fields["destination"] else { throw fail("\(field).destination", "missing") }
        var mount = ContainerSpec.Mount(destination: try string(destination, "\(field).destination"))
        if !mount.destination.hasPrefix("/") { throw fail("\(field).destination", "\"\(mount.destination)\" is not an absolute path") }
        if let type = fields["type"] { mount.type = try string(type, "\(field).type") }
        if let source = fields["source"] { mount.source = try string(source, "\(field).source") }
        if let options = fields["options"] { mount.options = try strings(options, "\(field).options") }
        return mount
    }

    private mutating func readLinux(_ value: JSONValue, into spec: inout ContainerSpec) throws(ContainerError) {
        let linux = try object(value, "linux",
                               known: ["namespaces", "uidMappings", "gidMappings", "resources", "maskedPaths", "readonlyPaths",
                                       "cgroupsPath", "sysctl", "seccomp"],
                               unsupported: ["devices", "rootfsPropagation", "mountLabel",
                                             "intelRdt", "personality", "timeOffsets", "memoryPolicy", "netDevices"])
        if let namespaces = linux["namespaces"] {
            for (i, element) in try array(namespaces, "linux.namespaces").enumerated() {
                let field = "linux.namespaces[\(i)]"
                let entry = try object(element, field, known: ["type", "path"])
                guard let typeValue = entry["type"] else { throw fail("\(field).type", "missing") }
                let type = try string(typeValue, "\(field).type")
                guard let kind = NamespaceKind(rawValue: type) else {
                    throw fail("\(field).type", "namespace type \"\(type)\" is not supported (pid, network, mount, ipc, uts, user, cgroup)")
                }
                if entry["path"] != nil { throw fail("\(field).path", "joining an existing namespace is not supported") }
                if !spec.namespaces.contains(kind) { spec.namespaces.append(kind) }
            }
        }
        for (key, isUID) in [("uidMappings", true), ("gidMappings", false)] {
            guard let mappings = linux[key] else { continue }
            for (i, element) in try array(mappings, "linux.\(key)").enumerated() {
                let field = "linux.\(key)[\(i)]"
                let entry = try object(element, field, known: ["containerID", "hostID", "size"])
                guard let c = entry["containerID"], let h = entry["hostID"], let s = entry["size"] else {
                    throw fail(field, "needs containerID, hostID and size")
                }
                let mapping = IDMapping(containerID: try integer(c, "\(field).containerID", as: UInt32.self),
                                        hostID: try integer(h, "\(field).hostID", as: UInt32.self),
                                        size: try integer(s, "\(field).size", as: UInt32.self))
                if mapping.size == 0 { throw fail("\(field).size", "must be at least 1") }
                if isUID { spec.uidMappings.append(mapping) } else { spec.gidMappings.append(mapping) }
            }
        }
        if let resources = linux["resources"] { try readResources(resources, into: &spec) }
        if let masked = linux["maskedPaths"] { spec.maskedPaths = try strings(masked, "linux.maskedPaths") }
        if let readonly = linux["readonlyPaths"] { spec.readonlyPaths = try strings(readonly, "linux.readonlyPaths") }
        if let path = linux["cgroupsPath"] { spec.cgroupsPath = try OCIRuntime.cgroupPath(try string(path, "linux.cgroupsPath")) }
        if let sysctl = linux["sysctl"] {
            guard case .object(let members) = sysctl else { throw expected("an object", sysctl, "linux.sysctl") }
            for (key, value) in members {
                spec.sysctls[key] = try string(value, "linux.sysctl.\(key)")
            }
            try OCIRuntime.checkSysctls(spec)
        }
        if let seccomp = linux["seccomp"] { spec.seccompProfile = try seccompProfile(seccomp) }  // ContainerSpec+Seccomp.swift
    }

    private mutating func readResources(_ value: JSONValue, into spec: inout ContainerSpec) throws(ContainerError) {
        let resources = try object(value, "linux.resources", known: ["memory", "pids", "cpu", "devices"],
                                   unsupported: ["blockIO", "hugepageLimits", "network", "rdma", "unified"])
        if let memory = resources["memory"] {
            let fields = try object(memory, "linux.resources.memory", known: ["limit"],
                                    unsupported: ["reservation", "swap", "kernel", "kernelTCP", "swappiness",
                                                  "disableOOMKiller", "useHierarchy", "checkBeforeUpdate"])
            if let limit = fields["limit"] {
                let bytes = try integer(limit, "linux.resources.memory.limit", as: Int64.self)
                if bytes > 0 {
                    if UInt64(bytes) < ResourceLimits.minimumMemoryBytes { throw fail("linux.resources.memory.limit", "\(bytes) is below the minimum of 1 MiB") }
                    spec.resources.memoryBytes = UInt64(bytes)
                }
            }
        }
        if let pids = resources["pids"] {
            let fields = try object(pids, "linux.resources.pids", known: ["limit"])
            if let limit = fields["limit"] {
                let value = try integer(limit, "linux.resources.pids.limit", as: Int64.self)
                if value > 0 { spec.resources.pids = value }
            }
        }
        if let cpu = resources["cpu"] {
            let fields = try object(cpu, "linux.resources.cpu", known: ["quota", "period"],
                                    unsupported: ["shares", "realtimeRuntime", "realtimePeriod", "cpus", "mems", "idle", "burst"])
            if let quota = fields["quota"] {
                let value = try integer(quota, "linux.resources.cpu.quota", as: Int64.self)
                if value > 0 { spec.resources.cpuQuotaMicroseconds = value }
            }
            if let period = fields["period"] { spec.resources.cpuPeriodMicroseconds = try integer(period, "linux.resources.cpu.period", as: UInt64.self) }
        }
        if let devices = resources["devices"] {
            // Enforced through the container's cgroup, after a deny-all and before the default devices
            // (DeviceRule.effective): `crun spec`'s single deny-all rule changes nothing, an allow widens.
            for (i, element) in try array(devices, "linux.resources.devices").enumerated() {
                spec.deviceRules.append(try deviceRule(element, "linux.resources.devices[\(i)]"))
            }
        }
    }

    private mutating func deviceRule(_ value: JSONValue, _ field: String) throws(ContainerError) -> DeviceRule {
        let fields = try object(value, field, known: ["allow", "type", "major", "minor", "access"])
        guard let allow = fields["allow"] else { throw fail("\(field).allow", "missing") }
        var rule = DeviceRule(allow: try bool(allow, "\(field).allow"))
        if let type = fields["type"] {
            let text = try string(type, "\(field).type")
            guard let kind = DeviceRule.Kind(rawValue: text) else { throw fail("\(field).type", "\"\(text)\" is not a, c or b") }
            rule.kind = kind
        }
        // Absent or -1 (as some runtimes write it): any. The kernel's majors have 12 bits and minors 20.
        for (key, isMajor) in [("major", true), ("minor", false)] {
            guard let value = fields[key] else { continue }
            let number = try integer(value, "\(field).\(key)", as: Int64.self)
            guard number >= -1, number <= Int64(Int32.max) else { throw fail("\(field).\(key)", "\(number) is not a device number (or -1 for any)") }
            if isMajor { rule.major = number < 0 ? nil : number } else { rule.minor = number < 0 ? nil : number }
        }
        if let access = fields["access"] {
            let text = try string(access, "\(field).access")
            guard !text.isEmpty, text.allSatisfy({ "rwm".contains($0) }) else {
                throw fail("\(field).access", "\"\(text)\" is not a combination of r, w and m")
            }
            rule.access = text
        }
        return rule
    }
}

/// RLIMIT_* names and their numbers (asm-generic/resource.h; the same on x86_64 and aarch64).
enum RlimitResource {
    static let names = ["RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
                        "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
                        "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"]
    static func number(_ name: String) -> Int32? { names.firstIndex(of: name).map(Int32.init) }
}

extension ContainerSpec {
    /// The config.json `swiftlet container spec` writes: `crun spec`'s document (so the same bundle
    /// runs under crun, runc and swiftlet), with user namespace and mappings when `rootless`.
    public static func ociTemplate(rootless: Bool, host: HostIdentity = .current) -> JSONValue {
        func strings(_ list: [String]) -> JSONValue { .array(list.map { .string($0) }) }
        let caps = strings(CapabilitySet.ociDefault.names)
        var namespaces: [JSONValue] = ["pid", "network", "ipc", "uts", "mount", "cgroup"].map { .object([("type", .string($0))]) }
        var linux: [(String, JSONValue)] = []
        if rootless {
            namespaces.append(.object([("type", .string("user"))]))
            linux.append(("uidMappings", .array([.object([("containerID", .number(0)), ("hostID", .number(Double(host.uid))), ("size", .number(1))])])))
            linux.append(("gidMappings", .array([.object([("containerID", .number(0)), ("hostID", .number(Double(host.gid))), ("size", .number(1))])])))
        }
        linux.append(("resources", .object([("devices", .array([.object([("allow", .bool(false)), ("access", .string("rwm"))])]))])))
        linux.append(("namespaces", .array(namespaces)))
        linux.append(("maskedPaths", strings(defaultMaskedPaths)))
        linux.append(("readonlyPaths", strings(defaultReadonlyPaths)))
        let mounts: [JSONValue] = defaultMounts(rootless: rootless, cgroupMount: true).map { mount in
            .object([("destination", .string(mount.destination)), ("type", .string(mount.type ?? "")),
                     ("source", .string(mount.source ?? "")), ("options", strings(mount.options))].filter {
                         if case .array(let a) = $0.1 { return !a.isEmpty } else { return true }
                     })
        }
        return .object([
            ("ociVersion", .string("1.0.0")),
            ("process", .object([
                ("terminal", .bool(true)),
                ("user", .object([("uid", .number(0)), ("gid", .number(0))])),
                ("args", strings(["sh"])),
                ("env", strings(["PATH=\(defaultPath)", "TERM=xterm"])),
                ("cwd", .string("/")),
                ("capabilities", .object([("bounding", caps), ("effective", caps), ("inheritable", .array([])),
                                          ("permitted", caps), ("ambient", caps)])),
                ("rlimits", .array([.object([("type", .string("RLIMIT_NOFILE")), ("hard", .number(1024)), ("soft", .number(1024))])])),
                ("noNewPrivileges", .bool(true)),
            ])),
            ("root", .object([("path", .string("rootfs")), ("readonly", .bool(true))])),
            ("hostname", .string("swiftlet")),
            ("mounts", .array(mounts)),
            ("linux", .object(linux)),
        ])
    }
}
