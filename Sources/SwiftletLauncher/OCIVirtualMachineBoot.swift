// OCIVirtualMachineBoot: the VMM side of `swiftlet-vm` (Container/OCIVirtualMachine.swift starts it at
// `create`): `swiftlet oci-vm-boot --start-fd N --rootfs DIR --base-initrd FILE --initrd-out FILE boot ...`.
// It waits for `start` (one byte on the start FIFO, descriptor N), packs the bundle's root filesystem into a
// newc cpio under /container (X86Boot's Cpio: directories, regular files, symlinks; device nodes, sockets and
// FIFOs are skipped), appends it to the guest's initramfs, and boots `swiftlet boot`'s arguments with that
// initramfs. The guest's init runs the command in /container (the command line OCIVirtualMachine built).
import Glibc
import VMM
import X86Boot

enum OCIVirtualMachineBoot {
    /// The most a bundle's rootfs may hold to travel in the initramfs: the guest unpacks it in emulated
    /// kernel code on kvm_pvm (seconds per MiB), and the initramfs must fit in guest RAM beside it.
    static let rootfsLimit = 256 << 20
    static let entryLimit = 100_000

    static func main(_ arguments: [String]) -> Int32 {
        var options: [String: String] = [:]
        var index = 0
        while index + 1 < arguments.count, arguments[index].hasPrefix("--") {
            options[arguments[index]] = arguments[index + 1]
            index += 2
        }
        guard index < arguments.count, arguments[index] == "boot", let fdText = options["--start-fd"], let startFD = Int32(fdText),
              let rootfs = options["--rootfs"], let base = options["--base-initrd"], let output = options["--initrd-out"] else {
            printError("swiftlet-vm: oci-vm-boot: malformed internal command line")
            return ExitStatus.badInput
        }
        var go: UInt8 = 0
        var n = 0
        repeat { n = read(startFD, &go, 1) } while n < 0 && errno == EINTR
        close(startFD)
        guard n == 1 else { return 125 }

        var files = [Cpio.File.directory("/container")]
        var total = 0
        if let problem = walk(rootfs, as: "/container", into: &files, total: &total) {
            printError("swiftlet-vm: rootfs: \(problem)")
            return 125
        }
        let baseBytes: [UInt8]
        switch FileBytes.read(base) {
        case let .success(bytes): baseBytes = bytes
        case let .failure(failure):
            printError("swiftlet-vm: cannot read the guest initramfs \(base): \(failure.reason)")
            return 125
        }
        let archive = Cpio.concatenate(baseBytes, Cpio.archive(files))
        let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            printError("swiftlet-vm: cannot write \(output): \(String(cString: strerror(errno)))")
            return 125
        }
        var offset = 0
        while offset < archive.count {
            let written = archive.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { break }
            offset += written
        }
        close(fd)
        guard offset == archive.count else {
            printError("swiftlet-vm: cannot write \(output)")
            return 125
        }
        do {
            return BootRunner.run(try BootArguments.parse(Array(arguments[(index + 1)...])))
        } catch {
            printError("swiftlet-vm: \(error)")
            return error.exitStatus
        }
    }

    /// Adds `directory`'s entries (not following symlinks) under `prefix`; a problem in words, or nil.
    static func walk(_ directory: String, as prefix: String, into files: inout [Cpio.File], total: inout Int) -> String? {
        guard let handle = opendir(directory) else { return "cannot read \(directory): \(String(cString: strerror(errno)))" }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        for name in names.sorted() {
            let path = directory + "/" + name, inside = prefix + "/" + name
            guard files.count < entryLimit else { return "more than \(entryLimit) entries; too many for a microVM's initramfs" }
            var info = stat()
            guard lstat(path, &info) == 0 else { return "cannot stat \(path): \(String(cString: strerror(errno)))" }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                files.append(.directory(inside, mode: UInt32(info.st_mode & 0o7777)))
                if let problem = walk(path, as: inside, into: &files, total: &total) { return problem }
            case S_IFLNK:
                var buffer = [CChar](repeating: 0, count: 4096)
                let n = readlink(path, &buffer, buffer.count - 1)
                guard n >= 0 else { return "cannot read the link \(path)" }
                files.append(.symlink(inside, target: String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)))
            case S_IFREG:
                total += Int(info.st_size)
                guard total <= rootfsLimit else { return "more than \(rootfsLimit >> 20) MiB; too large for a microVM's initramfs" }
                switch FileBytes.read(path) {
                case let .success(bytes): files.append(Cpio.File(path: inside, mode: UInt32(info.st_mode & 0o7777), bytes: bytes))
                case let .failure(failure): return "cannot read \(path): \(failure.reason)"
                }
            default:
                continue // device nodes, sockets, FIFOs: the guest's devtmpfs has its own
            }
        }
        return nil
    }
}
