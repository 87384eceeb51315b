// OCIRuntime: the OCI runtime command line (runtime-spec runtime.md "Operations", and the runc/crun
// command line that podman, conmon and containerd call): `create`, `start`, `state`, `kill`, `delete`,
// `run`, `exec`, `list`, `ps`, `features`, with the global options they pass (--root, --log,
// --log-format, --debug; --systemd-cgroup is refused). The binary answers as a runtime when it is run
// as `swiftlet-runtime` (a symlink to swiftlet) or as `swiftlet oci`; `swiftlet-vm` runs the same
// bundles in a microVM (OCIVirtualMachine). State lives in --root (default /run/swiftlet), see OCIState.
//
// Errors are one line on stderr ("swiftlet-runtime: <step>: <what>"), and, with --log, one entry in the
// log file (JSON lines with --log-format json, as conmon and podman read runc's); exit status 1 for a
// failed operation, 2 for a malformed command line, like runc's.

import CLinux

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

public enum OCIRuntime {
    public static let ociVersion = "1.0.2"
    public static let version = "0.1.0"

    public enum Mode: String, Sendable {
        case process, vm
        var name: String { self == .vm ? "swiftlet-vm" : "swiftlet-runtime" }
        var defaultRoot: String { self == .vm ? "/run/swiftlet-vm" : "/run/swiftlet" }
    }

    /// The global options, and where errors go.
    struct Context {
        var mode: Mode
        var root: String
        var logPath: String?
        var logJSON = false
        var debug = false

        func error(_ message: String) {
            log("error", message)
            ContainerCLIOutput.line(2, "\(mode.name): \(message)")
        }

        func warn(_ message: String) {
            log("warning", message)
            if debug { ContainerCLIOutput.line(2, "\(mode.name): warning: \(message)") }
        }

        func log(_ level: String, _ message: String) {
            guard let logPath else { return }
            let time = OCIState.timestamp()
            let line = logJSON
                ? JSONValue.object([("level", .string(level)), ("msg", .string(message)), ("time", .string(time))]).compact() + "\n"
                : "time=\"\(time)\" level=\(level) msg=\(JSONValue.quote(message))\n"
            let fd = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { return }
            ContainerCLIOutput.write(fd, line)
            close(fd)
        }

        func directory(_ id: String) -> String { root + "/" + id }
    }

    static let usage = """
        usage: swiftlet-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND [OPTIONS] ID
          create [--bundle DIR] [--pid-file FILE] [--console-socket SOCKET] [--preserve-fds N] ID
          start ID | state ID | kill [--all] ID [SIGNAL] | delete [--force] ID
          run [--bundle DIR] [--pid-file FILE] [--console-socket SOCKET] [--detach] ID
          exec [--process FILE | -- ARGS] [--detach] [--pid-file FILE] [--console-socket SOCKET] [--tty] [--cwd DIR] [--env K=V] [--user UID[:GID]] ID
          list [--format table|json] [--quiet] | ps [--format table|json] ID | features | --version
        """

    /// Runs the runtime with the program's arguments after its name; returns the exit status.
    public static func main(_ arguments: [String], mode: Mode) -> Int32 {
        var context = Context(mode: mode, root: mode.defaultRoot)
        var i = 0
        func value(_ name: String, _ inline: String?) -> String? {
            if let inline { return inline }
            i += 1
            return i < arguments.count ? arguments[i] : nil
        }
        while i < arguments.count, arguments[i].hasPrefix("-") {
            let (name, inline) = split(arguments[i])
            switch name {
            case "--root":
                guard let v = value(name, inline) else { return usageError(context, "--root needs a directory") }
                context.root = FileSystem.absolute(v)
            case "--log":
                guard let v = value(name, inline) else { return usageError(context, "--log needs a file") }
                context.logPath = FileSystem.absolute(v)
            case "--log-format":
                guard let v = value(name, inline), v == "json" || v == "text" else { return usageError(context, "--log-format takes text or json") }
                context.logJSON = v == "json"
            case "--debug": context.debug = true
            case "--systemd-cgroup":
                context.error("--systemd-cgroup: systemd cgroup management is not supported (use cgroupfs: podman --cgroup-manager cgroupfs)")
                return 1
            case "--rootless":
                _ = value(name, inline)
            case "--version", "-v":
                ContainerCLIOutput.line(1, "\(mode.name) version \(version)\nspec: \(ociVersion)")
                return 0
            case "--help", "-h":
                ContainerCLIOutput.line(1, usage)
                return 0
            default: return usageError(context, "unknown global option \(arguments[i])")
            }
            i += 1
        }
        guard i < arguments.count else { return usageError(context, "no command given") }
        let command = arguments[i]
        let rest = Array(arguments[(i + 1)...])
        do {
            switch command {
            case "create": return try create(rest, context)
            case "start": return try start(try single(rest, context), context)
            case "state": return try state(try single(rest, context), context)
            case "kill": return try killCommand(rest, context)
            case "delete": return try delete(rest, context)
            case "run": return try run(rest, context)
            case "exec": return try exec(rest, context)
            case "list": return try list(rest, context)
            case "ps": return try ps(rest, context)
            case "features": return features(context)
            case "version": ContainerCLIOutput.line(1, "\(mode.name) version \(version)\nspec: \(ociVersion)"); return 0
            default: return usageError(context, "unknown command \(command)")
            }
        } catch {
            context.error(error.description)
            return error.exitStatus == 125 ? 1 : error.exitStatus
        }
    }

    static func usageError(_ context: Context, _ message: String) -> Int32 {
        context.error(message + " (see \(context.mode.name) --help)")
        return 2
    }

    static func split(_ argument: String) -> (String, String?) {
        guard argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") else { return (argument, nil) }
        return (String(argument[..<equals]), String(argument[argument.index(after: equals)...]))
    }

    /// Options of one command: flags (no value) and options (one value), then positional words.
    struct Parsed {
        var values: [String: String] = [:]
        var lists: [String: [String]] = [:]
        var flags: Set<String> = []
        var positional: [String] = []
    }

    static func parse(_ arguments: [String], options: [String: String], flags: [String: String],
                      lists: [String: String] = [:]) throws(ContainerError) -> Parsed {
        var parsed = Parsed()
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            if argument == "--" {
                parsed.positional += arguments[(i + 1)...]
                break
            }
            if !argument.hasPrefix("-") || argument == "-" {
                // The first word that is not an option: the ID, then (exec) the command and its own options.
                parsed.positional.append(argument)
                let rest = arguments[(i + 1)...]
                parsed.positional += rest.first == "--" ? Array(rest.dropFirst()) : Array(rest)
                break
            }
            let (name, inline) = split(argument)
            if let canonical = flags[name] {
                parsed.flags.insert(canonical)
            } else if let canonical = options[name] ?? lists[name] {
                var text = inline
                if text == nil {
                    i += 1
                    guard i < arguments.count else { throw ContainerError(step: "usage", "\(name) needs a value", exitStatus: 2) }
                    text = arguments[i]
                }
                if lists[name] != nil { parsed.lists[canonical, default: []].append(text!) } else { parsed.values[canonical] = text! }
            } else {
                throw ContainerError(step: "usage", "unknown option \(argument)", exitStatus: 2)
            }
            i += 1
        }
        return parsed
    }

    static func single(_ arguments: [String], _ context: Context) throws(ContainerError) -> String {
        let parsed = try parse(arguments, options: [:], flags: [:])
        guard parsed.positional.count == 1 else { throw ContainerError(step: "usage", "give exactly one container ID", exitStatus: 2) }
        return try checkID(parsed.positional[0])
    }

    /// A container ID names a directory under --root: letters, digits and _ + - . only, no "." or "..".
    static func checkID(_ id: String) throws(ContainerError) -> String {
        let allowed = id.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x5f || c == 0x2b || c == 0x2d || c == 0x2e
        }
        guard !id.isEmpty, id.utf8.count <= 1024, allowed, id != ".", id != ".." else {
            throw ContainerError(step: "usage", "invalid container ID \"\(id.prefix(80))\" (letters, digits, _ + - . only)", exitStatus: 2)
        }
        return id
    }

    // MARK: - state on disk

    static func load(_ id: String, _ context: Context) throws(ContainerError) -> OCIState {
        let directory = context.directory(id)
        guard FileSystem.isDirectory(directory) else { throw ContainerError(step: "state", "container \(id) does not exist") }
        guard let bytes = try? FileSystem.readRegularFile(directory + "/state.json", limit: 1 << 20),
              let document = try? JSONParser.parse(bytes), let state = OCIState.parse(document) else {
            throw ContainerError(step: "state", "container \(id) has no usable state (left by a runtime that was killed)",
                                 hint: "remove it with `\(context.mode.name) delete --force \(id)`")
        }
        return state
    }

    static func status(_ state: OCIState, _ context: Context) -> String {
        guard state.isAlive else { return "stopped" }
        return FileSystem.exists(context.directory(state.id) + "/start.fifo") ? "created" : "running"
    }

    static func removeDirectory(_ id: String, _ context: Context) {
        let directory = context.directory(id)
        for name in (try? FileSystem.list(directory)) ?? [] { unlink(directory + "/" + name) }
        rmdir(directory)
    }

    static func writeFile(_ text: String, to path: String) throws(ContainerError) {
        // Written beside and renamed, so a reader (conmon reads the pid file) never sees half of it.
        let temporary = path + ".tmp"
        do { try FileSystem.write(text, to: temporary, create: true) } catch {
            throw ContainerError(step: "state", "cannot write \(temporary)", errno: error)
        }
        guard rename(temporary, path) == 0 else {
            let saved = errno
            unlink(temporary)
            throw ContainerError(step: "state", "cannot write \(path)", errno: .init(rawValue: saved))
        }
    }

    // MARK: - create, start, run

    struct CreateOptions {
        var bundle = "."
        var pidFile: String?
        var consoleSocket: String?
        var preserveFDs = 0
        var id = ""
    }

    static func createOptions(_ arguments: [String], extraFlags: [String: String] = [:]) throws(ContainerError) -> (CreateOptions, Parsed) {
        let parsed = try parse(arguments, options: ["--bundle": "bundle", "-b": "bundle", "--pid-file": "pid-file",
                                                    "--console-socket": "console-socket", "--preserve-fds": "preserve-fds"],
                               flags: ["--no-pivot": "no-pivot", "--no-new-keyring": "no-new-keyring"].merging(extraFlags) { a, _ in a })
        guard parsed.positional.count == 1 else { throw ContainerError(step: "usage", "give exactly one container ID", exitStatus: 2) }
        var options = CreateOptions()
        options.id = try checkID(parsed.positional[0])
        options.bundle = FileSystem.absolute(parsed.values["bundle"] ?? ".")
        options.pidFile = parsed.values["pid-file"].map(FileSystem.absolute)
        options.consoleSocket = parsed.values["console-socket"].map(FileSystem.absolute)
        if let text = parsed.values["preserve-fds"] {
            guard let n = Int(text), n >= 0, n <= 4096 else { throw ContainerError(step: "usage", "--preserve-fds \(text): give a count from 0 to 4096", exitStatus: 2) }
            options.preserveFDs = n
        }
        return (options, parsed)
    }

    static func create(_ arguments: [String], _ context: Context) throws(ContainerError) -> Int32 {
        let (options, _) = try createOptions(arguments)
        let state = try create(options, context)
        _ = state
        return 0
    }

    /// `create`: the container set up and waiting for `start`, its state on disk, the create-time hooks
    /// run, the pid file written. On any failure nothing is left: process, cgroup, state directory.
    static func create(_ options: CreateOptions, _ context: Context) throws(ContainerError) -> OCIState {
        let id = options.id
        if mkdir(context.root, 0o700) != 0 && errno != EEXIST {
            throw ContainerError(step: "state", "cannot create \(context.root)", errno: .init(rawValue: errno))
        }
        let directory = context.directory(id)
        // mkdir is the lock: of two creates with one ID, exactly one gets the directory.
        if mkdir(directory, 0o700) != 0 {
            let saved = errno
            if saved == EEXIST {
                throw ContainerError(step: "create", "container \(id) already exists",
                                     hint: FileSystem.exists(directory + "/state.json") ? nil : "left by a runtime that was killed; remove it with `\(context.mode.name) delete --force \(id)`")
            }
            throw ContainerError(step: "state", "cannot create \(directory)", errno: .init(rawValue: saved))
        }
        var created: OCIState?
        do throws(ContainerError) {
            let (spec, document) = try loadBundle(options.bundle, context)
            let hooks = try OCIHooks(document: document)
            let fifo = directory + "/start.fifo"
            guard mkfifo(fifo, 0o600) == 0 else { throw ContainerError(step: "create", "cannot create \(fifo)", errno: .init(rawValue: errno)) }
            // O_RDWR: opening a FIFO this way never blocks; the container keeps this end and reads from it.
            let fifoFD = open(fifo, O_RDWR | O_CLOEXEC)
            guard fifoFD >= 0 else { throw ContainerError(step: "create", "cannot open \(fifo)", errno: .init(rawValue: errno)) }
            defer { close(fifoFD) }

            var state: OCIState
            if context.mode == .vm {
                state = try OCIVirtualMachine.create(spec: spec, id: id, bundle: options.bundle, directory: directory,
                                                     startFD: fifoFD, consoleSocket: options.consoleSocket, warn: context.warn)
            } else {
                var launch = LaunchOptions()
                launch.forwardSignals = false
                launch.baseDirectory = options.bundle
                launch.warn = context.warn
                launch.startFD = fifoFD
                launch.consoleSocket = spec.process.terminal ? options.consoleSocket : nil
                launch.preserveFDs = options.preserveFDs
                launch.cgroupName = spec.cgroupsPath ?? "/swiftlet/\(id)"
                if spec.process.terminal && options.consoleSocket == nil {
                    throw ContainerError(step: "create", "process.terminal is true but no --console-socket was given",
                                         hint: "create needs somewhere to send the terminal")
                }
                let result = try Launcher.run(spec, options: launch)
                let startTime = OCIState.processStat(result.pid)?.startTime ?? 0
                state = OCIState(id: id, pid: result.pid, startTime: startTime, bundle: options.bundle, rootfs: spec.rootPath,
                                 created: OCIState.timestamp(), cgroupDirectories: result.cgroupDirectories)
            }
            state.annotations = annotations(document)
            state.hasHooks = !hooks.hooks.isEmpty
            created = state
            try writeFile(state.stored().formatted(), to: directory + "/state.json")
            for kind in ["prestart", "createRuntime", "createContainer"] { try hooks.run(kind, state: state.document(status: "created")) }
            if let pidFile = options.pidFile { try writeFile(String(state.pid), to: pidFile) }
            return state
        } catch {
            if let created { destroy(created) }
            removeDirectory(id, context)
            throw error
        }
    }

    /// The bundle's config.json as a spec, and the document (for hooks and annotations).
    static func loadBundle(_ bundle: String, _ context: Context) throws(ContainerError) -> (ContainerSpec, JSONValue) {
        guard FileSystem.isDirectory(bundle) else { throw ContainerError(step: "bundle", "\(bundle) is not a directory") }
        let path = bundle + "/config.json"
        let bytes: [UInt8]
        do { bytes = try FileSystem.readRegularFile(path, limit: ContainerSpec.configLimit) } catch {
            if case let .system(errno) = error { throw ContainerError(step: "bundle", "cannot read \(path)", errno: errno) }
            throw ContainerError(step: "bundle", "cannot read \(path): \(error)")
        }
        let document: JSONValue
        do { document = try JSONParser.parse(bytes) } catch { throw ContainerError(step: "config.json", error.description) }
        var spec = try ContainerSpec(oci: document, bundle: bundle, warn: context.warn)
        // The bundle's linux.seccomp profile is compiled and installed (ContainerSpec+Seccomp.swift); a bundle
        // without one runs without a filter, as under runc and crun: the client (podman) decides.
        spec.seccomp = spec.seccompProfile != nil
        return (spec, document)
    }

    static func annotations(_ document: JSONValue) -> [(String, String)] {
        guard case .object(let top) = document, case .object(let list)? = top.first(where: { $0.0 == "annotations" })?.1 else { return [] }
        return list.compactMap { if case .string(let v) = $0.1 { ($0.0, v) } else { nil } }
    }

    static func start(_ id: String, _ context: Context) throws(ContainerError) -> Int32 {
        let state = try load(id, context)
        let current = status(state, context)
        guard current == "created" else { throw ContainerError(step: "start", "container \(id) is \(current), not created") }
        let hooks = state.hasHooks ? (try? loadBundle(state.bundle, context)).flatMap { try? OCIHooks(document: $0.1) } ?? OCIHooks() : OCIHooks()
        try hooks.run("startContainer", state: state.document(status: "created"))
        let fifo = context.directory(id) + "/start.fifo"
        let fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            throw ContainerError(step: "start", "container \(id) is not waiting to start", errno: .init(rawValue: errno))
        }
        var go: UInt8 = 1
        let written = write(fd, &go, 1)
        close(fd)
        guard written == 1 else { throw ContainerError(step: "start", "cannot release container \(id)", errno: .init(rawValue: errno)) }
        unlink(fifo)
        do { try hooks.run("poststart", state: state.document(status: "running")) } catch { context.warn(error.description) }
        return 0
    }

    /// `run`: create, start, and (unless --detach) wait for the container, then delete it; exits with
    /// the container's status.
    static func run(_ arguments: [String], _ context: Context) throws(ContainerError) -> Int32 {
        let (options, parsed) = try createOptions(arguments, extraFlags: ["--detach": "detach", "-d": "detach"])
        let state = try create(options, context)
        try _ = start(options.id, context)
        if parsed.flags.contains("detach") { return 0 }
        var status: Int32 = 0
        _ = sl_wait(state.pid, &status)
        var signal: Int32 = 0
        let code = sl_exit_status(status, &signal)
        try _ = delete(["--force", options.id], context)
        return code
    }

    // MARK: - state, kill, delete

    static func state(_ id: String, _ context: Context) throws(ContainerError) -> Int32 {
        let state = try load(id, context)
        ContainerCLIOutput.write(1, state.document(status: status(state, context)).formatted())
        return 0
    }

    static func killCommand(_ arguments: [String], _ context: Context) throws(ContainerError) -> Int32 {
        let parsed = try parse(arguments, options: [:], flags: ["--all": "all", "-a": "all"])
        guard (1...2).contains(parsed.positional.count) else { throw ContainerError(step: "usage", "kill ID [SIGNAL]", exitStatus: 2) }
        let id = try checkID(parsed.positional[0])
        let number = try signalNumber(parsed.positional.count == 2 ? parsed.positional[1] : "SIGTERM")
        let state = try load(id, context)
        guard state.isAlive else { throw ContainerError(step: "kill", "container \(id) is not running") }
        if parsed.flags.contains("all") {
            for directory in state.cgroupDirectories.prefix(1) {
                for pid in ((try? FileSystem.readString(directory + "/cgroup.procs")) ?? "").split(separator: "\n").compactMap({ pid_t($0) }) {
                    kill(pid, number)
                }
            }
        }
        guard kill(state.pid, number) == 0 else { throw ContainerError(step: "kill", "cannot signal container \(id)", errno: .init(rawValue: errno)) }
        return 0
    }

    /// SIGTERM, TERM, term or 15.
    static func signalNumber(_ text: String) throws(ContainerError) -> Int32 {
        if let n = Int32(text), n > 0, n < 65 { return n }
        let names = ["HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM", "TERM",
                     "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS"]
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        guard let index = names.firstIndex(of: name) else { throw ContainerError(step: "kill", "unknown signal \(text)", exitStatus: 2) }
        return Int32(index + 1)
    }

    static func delete(_ arguments: [String], _ context: Context) throws(ContainerError) -> Int32 {
        let parsed = try parse(arguments, options: [:], flags: ["--force": "force", "-f": "force"])
        guard parsed.positional.count == 1 else { throw ContainerError(step: "usage", "give exactly one container ID", exitStatus: 2) }
        let id = try checkID(parsed.positional[0])
        let directory = context.directory(id)
        guard FileSystem.isDirectory(directory) else {
            // --force: the container is gone either way (podman deletes after a failed create, too).
            if parsed.flags.contains("force") { return 0 }
            throw ContainerError(step: "delete", "container \(id) does not exist")
        }
        let state: OCIState
        do { state = try load(id, context) } catch {
            // A directory without usable state: a create that was killed. Only --force removes it.
            guard parsed.flags.contains("force") else { throw error }
            removeDirectory(id, context)
            return 0
        }
        let current = status(state, context)
        if current == "running" && !parsed.flags.contains("force") {
            throw ContainerError(step: "delete", "container \(id) is running", hint: "stop it first or use delete --force")
        }
        destroy(state)
        if state.hasHooks, let hooks = (try? loadBundle(state.bundle, context)).flatMap({ try? OCIHooks(document: $0.1) }) {
            do { try hooks.run("poststop", state: state.document(status: "stopped")) } catch { context.warn(error.description) }
        }
        removeDirectory(id, context)
        return 0
    }

    /// Kills what is left of the container and removes its cgroups.
    static func destroy(_ state: OCIState) {
        if state.isAlive { kill(state.pid, SIGKILL) }
        for directory in state.cgroupDirectories.reversed() {
            ContainerCgroup.killAll(in: directory, HostCgroupFilesystem())
            _ = ContainerCgroup.removeDirectory(directory, HostCgroupFilesystem())
        }
        // Wait (briefly) until the process is gone or a zombie its parent has yet to reap.
        var waited = 0
        while waited < 2000 && state.isAlive {
            usleep(1000)
            waited += 1
        }
    }

    // MARK: - exec

    static func exec(_ arguments: [String], _ context: Context) throws(ContainerError) -> Int32 {
        let parsed = try parse(arguments,
                               options: ["--process": "process", "-p": "process", "--pid-file": "pid-file", "--console-socket": "console-socket",
                                         "--cwd": "cwd", "--user": "user", "-u": "user", "--preserve-fds": "preserve-fds",
                                         "--process-label": "label", "--apparmor": "apparmor"],
                               flags: ["--detach": "detach", "-d": "detach", "--tty": "tty", "-t": "tty", "--no-new-privs": "nnp"],
                               lists: ["--env": "env", "-e": "env", "--cap": "cap", "-c": "cap"])
        guard let first = parsed.positional.first else { throw ContainerError(step: "usage", "exec needs a container ID", exitStatus: 2) }
        let id = try checkID(first)
        let state = try load(id, context)
        guard status(state, context) == "running" else { throw ContainerError(step: "exec", "container \(id) is not running") }
        var process: ContainerSpec.Process
        if let file = parsed.values["process"] {
            let bytes: [UInt8]
            do { bytes = try FileSystem.readRegularFile(file, limit: ContainerSpec.configLimit) } catch {
                throw ContainerError(step: "exec", "cannot read \(file): \(error)")
            }
            let document: JSONValue
            do { document = try JSONParser.parse(bytes) } catch { throw ContainerError(step: "process.json", error.description) }
            var reader = OCIReader()
            process = try reader.process(document)
            for warning in reader.warnings { context.warn(warning) }
        } else {
            guard parsed.positional.count > 1 else { throw ContainerError(step: "usage", "exec needs --process FILE or a command after the ID", exitStatus: 2) }
            process = (try? loadBundle(state.bundle, context))?.0.process ?? ContainerSpec.Process()
            process.args = Array(parsed.positional.dropFirst())
            process.terminal = parsed.flags.contains("tty")
            process.env += parsed.lists["env"] ?? []
            if let cwd = parsed.values["cwd"] { process.cwd = cwd }
            if let user = parsed.values["user"] {
                let parts = user.split(separator: ":")
                guard let uid = UInt32(parts.first ?? ""), parts.count <= 2 else { throw ContainerError(step: "usage", "--user \(user): give UID[:GID]", exitStatus: 2) }
                process.user = .init(uid: uid, gid: parts.count == 2 ? UInt32(parts[1]) ?? 0 : 0)
            }
            if parsed.flags.contains("nnp") { process.noNewPrivileges = true }
        }
        var launch = LaunchOptions()
        launch.consoleSocket = parsed.values["console-socket"].map(FileSystem.absolute)
        if let text = parsed.values["preserve-fds"] { launch.preserveFDs = Int(text) ?? 0 }
        if process.terminal && launch.consoleSocket == nil && parsed.flags.contains("detach") {
            throw ContainerError(step: "exec", "a detached process with a terminal needs --console-socket")
        }
        let pidFile = parsed.values["pid-file"].map(FileSystem.absolute)
        if context.mode == .vm { throw ContainerError(step: "exec", "exec into a microVM container is not supported") }
        let result = try Launcher.exec(process, into: state.pid, cgroupDirectories: state.cgroupDirectories, options: launch,
                                       detach: parsed.flags.contains("detach"))
        if let pidFile { try writeFile(String(result.pid), to: pidFile) }
        return result.exitStatus
    }

    // MARK: - list, ps, features

    static func list(_ arguments: [String], _ context: Context) throws(ContainerError) -> Int32 {
        let parsed = try parse(arguments, options: ["--format": "format", "-f": "format"], flags: ["--quiet": "quiet", "-q": "quiet"])
        let ids = ((try? FileSystem.list(context.root)) ?? []).sorted()
        var states: [(OCIState, String)] = []
        for id in ids { if let state = try? load(id, context) { states.append((state, status(state, context))) } }
        if parsed.flags.contains("quiet") {
            for (state, _) in states { ContainerCLIOutput.line(1, state.id) }
        } else if parsed.values["format"] == "json" {
            ContainerCLIOutput.write(1, JSONValue.array(states.map { $0.0.document(status: $0.1) }).formatted())
        } else {
            var text = "ID\tPID\tSTATUS\tBUNDLE\tCREATED\n"
            for (state, status) in states { text += "\(state.id)\t\(status == "stopped" ? 0 : state.pid)\t\(status)\t\(state.bundle)\t\(state.created)\n" }
            ContainerCLIOutput.write(1, text)
        }
        return 0
    }

    static func ps(_ arguments: [String], _ context: Context) throws(ContainerError) -> Int32 {
        let parsed = try parse(arguments, options: ["--format": "format", "-f": "format"], flags: [:])
        guard parsed.positional.count == 1 else { throw ContainerError(step: "usage", "give exactly one container ID", exitStatus: 2) }
        let state = try load(try checkID(parsed.positional[0]), context)
        var pids: [Int32] = []
        if let directory = state.cgroupDirectories.first {
            pids = ((try? FileSystem.readString(directory + "/cgroup.procs")) ?? "").split(separator: "\n").compactMap { Int32($0) }
        } else if state.isAlive {
            pids = [state.pid]
        }
        if parsed.values["format"] == "json" {
            ContainerCLIOutput.write(1, JSONValue.array(pids.map { .number(Double($0)) }).compact() + "\n")
        } else {
            var text = "PID\tCMD\n"
            for pid in pids {
                let command = ((try? FileSystem.readString("/proc/\(pid)/comm")) ?? "?").split(separator: "\n").first.map(String.init) ?? "?"
                text += "\(pid)\t\(command)\n"
            }
            ContainerCLIOutput.write(1, text)
        }
        return 0
    }

    /// `features` (runtime-spec features.md): what this runtime implements.
    static func features(_ context: Context) -> Int32 {
        func strings(_ list: [String]) -> JSONValue { .array(list.map { .string($0) }) }
        let document = JSONValue.object([
            ("ociVersionMin", .string("1.0.0")),
            ("ociVersionMax", .string(ociVersion)),
            ("hooks", strings(OCIHooks.kinds)),
            ("mountOptions", strings(["ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "sync", "async", "dirsync",
                                      "mand", "nomand", "noatime", "atime", "nodiratime", "diratime", "relatime", "norelatime",
                                      "strictatime", "nostrictatime", "lazytime", "nolazytime", "bind", "rbind",
                                      "private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable"])),
            ("linux", .object([
                ("namespaces", strings(NamespaceKind.allCases.map(\.rawValue))),
                ("capabilities", strings(Capability.names)),
                ("cgroup", .object([("v1", .bool(true)), ("v2", .bool(true)), ("systemd", .bool(false)), ("systemdUser", .bool(false))])),
                ("seccomp", .object([
                    ("enabled", .bool(true)),
                    ("actions", strings(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                                         "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"])),
                    ("operators", strings(["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"])),
                    ("archs", strings(["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"])),
                ])),
                ("apparmor", .object([("enabled", .bool(false))])),
                ("selinux", .object([("enabled", .bool(false))])),
            ])),
            ("annotations", .object([("org.swiftlet.mode", .string(context.mode.rawValue))])),
        ])
        ContainerCLIOutput.write(1, document.formatted())
        return 0
    }

    // MARK: - config checks used by the config.json reader

    /// linux.cgroupsPath: "/a/b" or "a/b" (taken from each hierarchy's root); systemd's "slice:prefix:name"
    /// needs --systemd-cgroup, which swiftlet refuses; ".." could climb out of the hierarchy.
    static func cgroupPath(_ text: String) throws(ContainerError) -> String {
        if text.contains(":") {
            throw ContainerError(step: "config.json", "linux.cgroupsPath \"\(text)\" is a systemd path; swiftlet manages cgroupfs paths only",
                                 hint: "podman --cgroup-manager cgroupfs")
        }
        let components = text.split(separator: "/")
        guard !components.isEmpty, !components.contains(".."), !components.contains("."), text.utf8.count < 4096 else {
            throw ContainerError(step: "config.json", "linux.cgroupsPath \"\(text.prefix(80))\" is not a cgroup path")
        }
        return "/" + components.joined(separator: "/")
    }

    /// Only namespaced sysctls, and only with their namespace: anything else would change the host.
    static func checkSysctls(_ spec: ContainerSpec) throws(ContainerError) {
        let ipc: Set<String> = ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
                                "kernel.shmmni", "kernel.shm_rmid_forced"]
        for key in spec.sysctls.keys.sorted() {
            let parts = key.split(separator: ".", omittingEmptySubsequences: false)
            guard !key.contains("/"), parts.allSatisfy({ !$0.isEmpty }), parts.count >= 2 else {
                throw ContainerError(step: "config.json", "linux.sysctl: \"\(key.prefix(80))\" is not a sysctl name")
            }
            let namespace: NamespaceKind?
            if key.hasPrefix("net.") { namespace = .network }
            else if ipc.contains(key) || key.hasPrefix("fs.mqueue.") { namespace = .ipc }
            else if key == "kernel.hostname" || key == "kernel.domainname" { namespace = .uts }
            else { namespace = nil }
            guard let namespace else {
                throw ContainerError(step: "config.json", "linux.sysctl: \(key) is not namespaced; setting it would change the host")
            }
            guard spec.namespaces.contains(namespace) else {
                throw ContainerError(step: "config.json", "linux.sysctl: \(key) needs a new \(namespace.rawValue) namespace; without one it would change the host")
            }
        }
    }
}

/// Writing to stdout and stderr without Foundation.
enum ContainerCLIOutput {
    static func line(_ fd: Int32, _ text: String) { write(fd, text + "\n") }

    static func write(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }
}

extension JSONValue {
    /// One line, no spaces: log entries and `ps --format json`.
    public func compact() -> String {
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .number(let value):
            if value == value.rounded(.towardZero), abs(value) < 1e15 { return String(Int64(value)) }
            return "\(value)"
        case .string(let value): return JSONValue.quote(value)
        case .array(let elements): return "[" + elements.map { $0.compact() }.joined(separator: ",") + "]"
        case .object(let members): return "{" + members.map { JSONValue.quote($0.0) + ":" + $0.1.compact() }.joined(separator: ",") + "}"
        }
    }
}
