// RunOptions: the flags of `swiftlet container run`, and how they become a ContainerSpec: on top of
// `ContainerSpec.standard` for --rootfs, or of the bundle's config.json for --bundle (flags given on
// the command line override the bundle). Also a plain argument parser, so a front end can run
// containers without swift-argument-parser on the path (it costs startup time and resident memory).

public struct RunOptions: Equatable, Sendable {
    public enum Network: String, Sendable, CaseIterable {
        /// A new network namespace with only the loopback device, up.
        case none
        /// The host's network namespace.
        case host
    }

    public var rootfs: String?
    public var bundle: String?
    public var memory: String?
    public var pids: String?
    public var cpus: String?
    public var hostname: String?
    public var network: Network?
    public var readOnly = false
    public var initProcess = false
    public var terminal = false
    /// Print how long each setup step took (not part of the spec).
    public var timings = false
    /// Write a machine-readable run report to this file (`--report FILE`; see ContainerReport.swift).
    public var report: String?
    /// `--userns identity|subuid|HOSTID:SIZE`: how container ids map to the host's (default identity for
    /// root: container root owns host-root files, the busybox rootfs works as is; docs/05, "User namespaces").
    public var userns: String?
    /// Bind mounts (`--bind HOST_PATH:CONTAINER_PATH[:ro|rw]`, read-only unless :rw), in order.
    public var binds: [(host: String, container: String, readOnly: Bool)] = []
    /// `-e NAME=VALUE` (or `-e NAME`: the host's value), added to the environment in order.
    public var env: [String] = []
    /// `-w DIR`: the command's working directory.
    public var workdir: String?
    /// `-u UID[:GID]`.
    public var user: String?
    /// `--upper DIR`: keep the container's writes in DIR/upper (default: a temporary upper layer, removed).
    public var upper: String?

    public static func == (a: RunOptions, b: RunOptions) -> Bool {
        a.rootfs == b.rootfs && a.bundle == b.bundle && a.memory == b.memory && a.pids == b.pids && a.cpus == b.cpus
            && a.hostname == b.hostname && a.network == b.network && a.readOnly == b.readOnly
            && a.initProcess == b.initProcess && a.terminal == b.terminal && a.timings == b.timings
            && a.report == b.report && a.command == b.command
            && a.binds.map(\.host) == b.binds.map(\.host) && a.binds.map(\.container) == b.binds.map(\.container)
            && a.binds.map(\.readOnly) == b.binds.map(\.readOnly) && a.env == b.env && a.workdir == b.workdir
            && a.user == b.user && a.upper == b.upper
    }

    /// Parses `--bind`'s value: HOST_PATH:CONTAINER_PATH[:ro|rw], the container path absolute (as podman's -v).
    public static func parseBind(_ text: String) throws(ContainerError) -> (host: String, container: String, readOnly: Bool) {
        var rest = text
        var readOnly = true
        for (suffix, value) in [(":ro", true), (":rw", false)] where rest.hasSuffix(suffix) {
            rest = String(rest.dropLast(3))
            readOnly = value
        }
        guard let colon = rest.lastIndex(of: ":"), colon != rest.startIndex else {
            throw ContainerError.invalid("--bind \(text): give HOST_PATH:CONTAINER_PATH[:ro|rw]")
        }
        let host = String(rest[..<colon]), container = String(rest[rest.index(after: colon)...])
        guard container.hasPrefix("/"), container != "/" else {
            throw ContainerError.invalid("--bind \(text): the container path must be absolute and not /")
        }
        return (host, container, readOnly)
    }

    /// `-u UID[:GID]`: numbers (the container's /etc/passwd is not read).
    public static func parseUser(_ text: String) throws(ContainerError) -> ContainerSpec.User {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let uid = UInt32(parts[0]) else {
            throw ContainerError.invalid("--user \(text): give UID or UID:GID as numbers")
        }
        guard parts.count == 1 || UInt32(parts[1]) != nil else { throw ContainerError.invalid("--user \(text): the GID is not a number") }
        return ContainerSpec.User(uid: uid, gid: parts.count == 2 ? UInt32(parts[1])! : uid)
    }
    public var command: [String] = []

    public init() {}

    /// The usage line, for errors and help.
    public static let usage = "swiftlet container run [--rootfs DIR | --bundle DIR] [--memory 64M] [--pids N] [--cpus 0.5] "
        + "[--hostname NAME] [--network none|host] [--read-only] [--init] [-t] [--timings] [--report FILE] [--bind HOST:PATH[:ro|rw]] "
        + "[-e NAME=VALUE] [-w DIR] [-u UID[:GID]] [--upper DIR] [--userns identity|subuid|HOSTID:SIZE] -- COMMAND [ARGS...]"

    /// Parses the arguments after `container run`. Options end at "--" or at the first word that is
    /// not an option; everything after is the command.
    public static func parse(_ arguments: [String]) throws(ContainerError) -> RunOptions {
        var options = RunOptions()
        var i = 0
        func value(_ name: String, _ inline: String?) throws(ContainerError) -> String {
            if let inline { return inline }
            i += 1
            guard i < arguments.count else { throw ContainerError.invalid("\(name) needs a value", hint: usage) }
            return arguments[i]
        }
        while i < arguments.count {
            let argument = arguments[i]
            if argument == "--" {
                i += 1
                break
            }
            guard argument.hasPrefix("-"), argument != "-" else { break }
            var name = argument
            var inline: String?
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                name = String(argument[..<equals])
                inline = String(argument[argument.index(after: equals)...])
            }
            switch name {
            case "--rootfs": options.rootfs = try value(name, inline)
            case "--bundle", "-b": options.bundle = try value(name, inline)
            case "--memory", "-m": options.memory = try value(name, inline)
            case "--pids", "--pids-limit": options.pids = try value(name, inline)
            case "-e", "--env": options.env.append(try value(name, inline))
            case "-w", "--workdir": options.workdir = try value(name, inline)
            case "-u", "--user": options.user = try value(name, inline)
            case "--upper": options.upper = try value(name, inline)
            case "--cpus": options.cpus = try value(name, inline)
            case "--hostname": options.hostname = try value(name, inline)
            case "--net", "--network":
                let text = try value(name, inline)
                guard let network = Network(rawValue: text) else {
                    throw ContainerError.invalid("--network \(text): unknown network mode", hint: "use none or host")
                }
                options.network = network
            case "--read-only": options.readOnly = true
            case "--init": options.initProcess = true
            case "-t", "--tty": options.terminal = true
            case "--timings": options.timings = true
            case "--report": options.report = try value(name, inline)
            case "--bind": options.binds.append(try parseBind(try value(name, inline)))
            case "--userns": options.userns = try value(name, inline)
            default: throw ContainerError.invalid("unknown option \(argument)", hint: usage)
            }
            i += 1
        }
        options.command = Array(arguments[min(i, arguments.count)...])
        return options
    }

    /// The spec these options describe. `warn` receives ignored config.json fields.
    public func makeSpec(host: HostIdentity = .current, warn: (String) -> Void) throws(ContainerError) -> ContainerSpec {
        var spec: ContainerSpec
        switch (rootfs, bundle) {
        case (nil, nil):
            throw ContainerError.invalid("no root filesystem", hint: "give --rootfs DIR or --bundle DIR")
        case (.some, .some):
            throw ContainerError.invalid("--rootfs and --bundle cannot be used together")
        case let (rootfs?, nil):
            guard !command.isEmpty else {
                throw ContainerError.invalid("no command given", hint: "put it after --, e.g. -- /bin/sh")
            }
            spec = ContainerSpec.standard(rootPath: FileSystem.absolute(rootfs), args: command, host: host)
        case let (nil, bundle?):
            let directory = FileSystem.absolute(bundle)
            guard FileSystem.isDirectory(directory) else {
                throw ContainerError(step: "bundle", "\(bundle) is not a directory", errno: FileSystem.exists(directory) ? .notDirectory : .noSuchFileOrDirectory)
            }
            spec = try ContainerSpec.load(bundle: directory, warn: warn)
            if !command.isEmpty { spec.process.args = command }
        }
        if terminal {
            spec.process.terminal = true
            // TERM follows the launcher's terminal, as podman and docker pass it.
            let term = getenv("TERM").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "xterm"
            spec.process.env.removeAll { $0.hasPrefix("TERM=") }
            spec.process.env.append("TERM=" + term)
        }
        for entry in env {
            var item = entry
            if !item.contains("=") {
                guard !item.isEmpty, let host = getenv(item) else { continue } // podman: -e NAME unset on the host adds nothing
                item += "=" + String(cString: host)
            }
            let name = item.prefix { $0 != "=" }
            guard !name.isEmpty else { throw ContainerError.invalid("-e \(entry): give NAME=VALUE or NAME") }
            spec.process.env.removeAll { $0.prefix { $0 != "=" } == name }
            spec.process.env.append(item)
        }
        if let workdir {
            guard workdir.hasPrefix("/") else { throw ContainerError.invalid("--workdir \(workdir): give an absolute path") }
            spec.process.cwd = workdir
        }
        if let user { spec.process.user = try Self.parseUser(user) }
        if readOnly { spec.rootReadonly = true }
        if initProcess { spec.initProcess = true }
        if let hostname {
            spec.hostname = hostname
            if !spec.namespaces.contains(.uts) { spec.namespaces.append(.uts) }
        }
        switch network {
        case .host?: spec.namespaces.removeAll { $0 == .network }
        case .none?: if !spec.namespaces.contains(.network) { spec.namespaces.append(.network) }
        case nil: break
        }
        for bind in binds {
            spec.mounts.append(ContainerSpec.Mount(destination: bind.container, type: "bind", source: FileSystem.absolute(bind.host),
                                                   options: ["bind", bind.readOnly ? "ro" : "rw", "nosuid", "nodev"]))
        }
        // Writes go to an overlay's upper layer, not into the image (unless the root is read-only anyway).
        if !spec.rootReadonly { spec.overlay = upper.map { .directory($0) } ?? .temporary }
        if let userns { try applyUserNamespace(userns, to: &spec, host: host) }
        if let memory { spec.resources.memoryBytes = try ResourceLimits.parseMemory(memory) }
        if let pids { spec.resources.pids = try ResourceLimits.parsePids(pids) }
        if let cpus {
            spec.resources.cpuQuotaMicroseconds = try ResourceLimits.parseCPUs(cpus)
            spec.resources.cpuPeriodMicroseconds = ResourceLimits.defaultCPUPeriod
        }
        return spec
    }

    /// `--userns`: identity (every id is itself), subuid (the caller's ranges in /etc/subuid and
    /// /etc/subgid), or HOSTID:SIZE (container ids 0...SIZE-1 are host ids HOSTID...).
    func applyUserNamespace(_ value: String, to spec: inout ContainerSpec, host: HostIdentity,
                            subuid: String = "/etc/subuid", subgid: String = "/etc/subgid") throws(ContainerError) {
        if host.isRootless && value != "identity" {
            throw ContainerError.invalid("--userns \(value): without root only your own id can be mapped", hint: "run as root, or leave --userns out")
        }
        let uids: IDMapping, gids: IDMapping
        switch value {
        case "identity":
            if host.isRootless { return }
            uids = .identity; gids = .identity
        case "subuid":
            // Only root gets here (rootless was refused above); its lines are "root:..." or "0:...".
            let name = "root"
            func read(_ path: String) throws(ContainerError) -> String {
                guard let bytes = try? FileSystem.readRegularFile(path, limit: 1 << 20) else {
                    throw ContainerError.invalid("--userns subuid: cannot read \(path)", hint: "add a line such as \(name):100000:65536, or give --userns HOSTID:SIZE")
                }
                return String(decoding: bytes, as: UTF8.self)
            }
            uids = try IDMapping.subordinate(user: name, id: host.uid, in: try read(subuid), file: subuid)
            gids = try IDMapping.subordinate(user: name, id: host.uid, in: try read(subgid), file: subgid)
        default:
            let parts = value.split(separator: ":")
            guard parts.count == 2, let start = UInt32(parts[0]), let size = UInt32(parts[1]), size > 0,
                  UInt64(start) + UInt64(size) <= UInt64(UInt32.max) else {
                throw ContainerError.invalid("--userns \(value): expected identity, subuid or HOSTID:SIZE (e.g. 100000:65536)")
            }
            uids = IDMapping(containerID: 0, hostID: start, size: size); gids = uids
        }
        if !spec.namespaces.contains(.user) { spec.namespaces.insert(.user, at: 0) }
        spec.uidMappings = [uids]
        spec.gidMappings = [gids]
    }

    /// The directory relative bind sources in the spec are resolved against.
    public var baseDirectory: String? { bundle.map(FileSystem.absolute) }
}

extension ContainerSpec {
    /// Writes `swiftlet container spec`'s config.json into `bundle`; refuses to overwrite one.
    public static func writeTemplate(bundle: String, rootless: Bool, host: HostIdentity = .current) throws(ContainerError) -> String {
        let directory = FileSystem.absolute(bundle)
        let path = directory + "/config.json"
        guard FileSystem.isDirectory(directory) else {
            throw ContainerError(step: "spec", "cannot write \(path)", errno: .noSuchFileOrDirectory)
        }
        if FileSystem.exists(path) { throw ContainerError(step: "spec", "\(path) already exists", errno: .fileExists) }
        do {
            try FileSystem.write(ociTemplate(rootless: rootless, host: host).formatted(), to: path, create: true)
        } catch {
            throw ContainerError(step: "spec", "cannot write \(path)", errno: error)
        }
        return path
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
