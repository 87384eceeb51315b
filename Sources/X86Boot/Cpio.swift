// Cpio: the "newc" cpio format (070701: ASCII-hex headers, names and data padded to 4 bytes), as the Linux
// kernel unpacks it into its initramfs (Documentation/driver-api/early-userspace/buffer-format.rst). The
// kernel unpacks archives placed one after another, skipping zero padding between them as long as each starts
// at a multiple of 4. Swiftlet adds files to a guest's initramfs that way: the command to run
// (`InitCommand`: /swiftlet/argv and /swiftlet/env, read by guest/linux/init.c), compare's probe script
// and helper, and an OCI bundle's root filesystem for swiftlet-vm (symlinks too). A directory must come before the files in it: the kernel does not create parents.

public enum Cpio {
    public struct File: Sendable {
        public var path: String
        public var mode: UInt32
        public var bytes: [UInt8]
        public var isDirectory: Bool
        /// A symbolic link: `bytes` is the target (S_IFLNK).
        public var isSymlink = false
        public init(path: String, mode: UInt32, bytes: [UInt8]) {
            self.path = path
            self.mode = mode
            self.bytes = bytes
            self.isDirectory = false
        }

        /// A directory entry (mode gets S_IFDIR).
        public static func directory(_ path: String, mode: UInt32 = 0o755) -> File {
            var file = File(path: path, mode: mode, bytes: [])
            file.isDirectory = true
            return file
        }

        /// A symbolic link to `target` (mode gets S_IFLNK; the data is the target text).
        public static func symlink(_ path: String, target: String) -> File {
            var file = File(path: path, mode: 0o777, bytes: Array(target.utf8))
            file.isSymlink = true
            return file
        }
    }

    /// A newc archive of the entries (regular files get S_IFREG, directories S_IFDIR), ended by TRAILER!!!.
    public static func archive(_ files: [File]) -> [UInt8] {
        var out: [UInt8] = []
        for (index, file) in files.enumerated() {
            let type: UInt32 = file.isDirectory ? 0o040000 : file.isSymlink ? 0o120000 : 0o100000
            append(&out, inode: UInt32(index + 1), mode: type | (file.mode & 0o7777), nlink: file.isDirectory ? 2 : 1,
                   name: file.path.hasPrefix("/") ? String(file.path.dropFirst()) : file.path, data: file.isDirectory ? [] : file.bytes)
        }
        append(&out, inode: 0, mode: 0, nlink: 1, name: "TRAILER!!!", data: [])
        return out
    }

    /// `base` zero-padded to a multiple of 4, then `addition`: an initramfs with more files.
    public static func concatenate(_ base: [UInt8], _ addition: [UInt8]) -> [UInt8] {
        var out = base
        while out.count % 4 != 0 { out.append(0) }
        return out + addition
    }

    static func append(_ out: inout [UInt8], inode: UInt32, mode: UInt32, nlink: UInt32, name: String, data: [UInt8]) {
        let nameBytes = Array(name.utf8) + [0]
        let fields: [UInt32] = [inode, mode, 0, 0, nlink, 0, UInt32(data.count), 0, 0, 0, 0, UInt32(nameBytes.count), 0]
        out += Array("070701".utf8)
        for field in fields { out += Array(hex8(field).utf8) }
        out += nameBytes
        while out.count % 4 != 0 { out.append(0) }
        out += data
        while out.count % 4 != 0 { out.append(0) }
    }

    static func hex8(_ value: UInt32) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }
}
