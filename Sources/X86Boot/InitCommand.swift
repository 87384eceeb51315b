// InitCommand: how `swiftlet boot -- COMMAND` reaches a Linux guest's init, exactly as given.
//
// The kernel command line cannot carry arbitrary words: Linux splits it at spaces, understands only plain
// double quotes (no escapes), hands init at most 32 arguments, and gives init every parameter it does not
// know as well (Documentation/admin-guide/kernel-parameters.rst, "--"). So the VMM appends a small second
// cpio archive to the initramfs (Cpio.swift) with
//   /swiftlet/argv   the command's words, each ended by a NUL byte (argv as execve(2) takes it)
//   /swiftlet/env    NAME=VALUE entries, each ended by a NUL byte (the host's TERM, for a shell)
// and Swiftlet's init (guest/linux/init.c) runs that. Another init can read the same two files.

public enum InitCommand {
    public static let directory = "/swiftlet"
    public static let argumentsPath = "/swiftlet/argv"
    public static let environmentPath = "/swiftlet/env"

    /// The archive for `arguments` and `environment` ("NAME=VALUE" entries); no argv file when there
    /// is no command (init then starts a shell).
    public static func archive(arguments: [String], environment: [String]) -> [UInt8] {
        var files = [Cpio.File.directory(directory)]
        if !arguments.isEmpty { files.append(Cpio.File(path: argumentsPath, mode: 0o644, bytes: nulTerminated(arguments))) }
        if !environment.isEmpty { files.append(Cpio.File(path: environmentPath, mode: 0o644, bytes: nulTerminated(environment))) }
        return Cpio.archive(files)
    }

    static func nulTerminated(_ words: [String]) -> [UInt8] {
        var bytes: [UInt8] = []
        for word in words { bytes += Array(word.utf8) + [0] }
        return bytes
    }
}
