// `swiftlet manual`: the man page, swiftlet(1), in roff, generated from the same definitions that parse the
// command line: BootOptions' table for `boot` and `explain`, ArgumentParser's own help for the other
// subcommands. setup.sh installs it (man swiftlet). Also here: the shell-completion candidates for the words
// of `boot` and `explain`, which ArgumentParser's completion scripts ask for (`--generate-completion-script`).
import ArgumentParser
import Glibc
import VMM

struct ManualCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "manual",
        abstract: "Print the man page swiftlet(1) in roff (setup.sh installs it: man swiftlet).",
        shouldDisplay: false
    )

    func run() throws {
        print(Self.page(), terminator: "")
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "\\": out += "\\e"
            case "-": out += "\\-"
            default: out.append(c)
            }
        }
        // A line that starts with a dot or a quote would be read as a request.
        return out.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix(".") || $0.hasPrefix("'") ? "\\&" + $0 : String($0) }.joined(separator: "\n")
    }

    static func page() -> String {
        var out = ".TH SWIFTLET 1 \"\" \"swiftlet \(SwiftletVersion.number)\" \"User Commands\"\n"
        out += ".SH NAME\nswiftlet \\- \(escape(Swiftlet.configuration.abstract))\n"
        out += ".SH SYNOPSIS\n"
        for name in ["boot", "explain", "doctor", "container", "compare"] {
            out += ".B swiftlet \(name)\n.RI [ options ]\n.br\n"
        }
        out += ".SH DESCRIPTION\nSwiftlet drives /dev/kvm directly to boot tiny guests and Linux kernels, and starts the same root file system as a container (namespaces, pivot_root, cgroups), so the two ways of isolating software can be run, measured and compared side by side.\n"
        out += ".SH \"BOOT OPTIONS\"\n\(escape(BootOptions.abstract(for: "boot")))\n"
        for option in BootOptions.options(for: "boot") {
            var head = option.short.map { "\\fB\(escape($0))\\fR, " } ?? ""
            head += "\\fB\(escape(option.name))\\fR"
            if let value = option.valueName { head += " \\fI\(value)\\fR" }
            if let value = option.inlineValueName { head += "[=\\fI\(value)\\fR]" }
            out += ".TP\n\(head)\n\(escape(option.help))\n"
        }
        out += ".TP\n\\fB\\-\\-\\fR \\fICOMMAND\\fR ...\nLinux: the command the guest's init runs (needs \\fB\\-\\-kernel\\fR and \\fB\\-\\-initrd\\fR).\n"
        let runOnly = BootOptions.all.filter { $0.scope == .runOnly }.map { "\\fB\(escape($0.name))\\fR" }
        out += ".SH EXPLAIN\n\(escape(BootOptions.abstract(for: "explain"))) It takes the boot options above except those that need a run: \(runOnly.joined(separator: ", ")).\n"
        let others: [(String, ParsableCommand.Type)] = [("doctor", DoctorCommand.self), ("container", ContainerCommand.self),
                                                        ("compare", CompareCommand.self)]
        for (name, command) in others {
            out += ".SH \"\(name.uppercased())\"\n.nf\n\(escape(Swiftlet.helpMessage(for: command, columns: 100)))\n.fi\n"
        }
        out += ".SH \"EXIT STATUS\"\n\(escape(BootOptions.exitStatusText))\n"
        out += ".SH FILES\n.TP\n/dev/kvm\nThe KVM device; \\fBswiftlet doctor\\fR says whether it is usable and which backend provides it.\n"
        out += ".SH \"SEE ALSO\"\n\\fBqemu\\-system\\-x86_64\\fR(1), \\fBcrun\\fR(1), \\fBpodman\\fR(1); docs/README.md in the source tree: the learning lab.\n"
        return out
    }
}

/// Shell-completion candidates for the words after `boot` or `explain`, from BootOptions' table: the value an
/// option takes (files, guest names, a fixed choice) or else the option names.
enum BootCompletion {
    static func candidates(subcommand: String, words: [String], index: Int, prefix: String) -> [String] {
        if words.prefix(index).contains("--") { return [] }
        if index > 0, index - 1 < words.count, let option = BootOptions.definition(named: words[index - 1], for: subcommand), !option.isFlag {
            switch option.completion {
            case .none: return []
            case .file: return files(matching: prefix)
            case .guestName: return MachineConfiguration.embeddedGuests.filter { $0.hasPrefix(prefix) }
            case let .choices(choices): return choices.filter { $0.hasPrefix(prefix) }
            }
        }
        let names = BootOptions.options(for: subcommand).flatMap { [$0.name] + ($0.short.map { [$0] } ?? []) } + ["--help"]
        return names.filter { $0.hasPrefix(prefix) }
    }

    /// Paths that start with `prefix`, directories with a trailing slash.
    static func files(matching prefix: String) -> [String] {
        var directory = ".", shown = "", namePrefix = prefix
        if let slash = prefix.lastIndex(of: "/") {
            shown = String(prefix[...slash])
            directory = shown
            namePrefix = String(prefix[prefix.index(after: slash)...])
        }
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var result: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name != ".", name != "..", name.hasPrefix(namePrefix), namePrefix.hasPrefix(".") || !name.hasPrefix(".") else { continue }
            var isDirectory = entry.pointee.d_type == UInt8(DT_DIR)
            if entry.pointee.d_type == UInt8(DT_LNK) || entry.pointee.d_type == UInt8(DT_UNKNOWN) {
                var info = stat()
                isDirectory = stat(shown + name == "" ? "." : (directory == "." && shown.isEmpty ? name : shown + name), &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
            }
            result.append(shown + name + (isDirectory ? "/" : ""))
        }
        return result.sorted()
    }
}
