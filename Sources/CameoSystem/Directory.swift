internal import Glibc

/// One name in a directory, with what `lstat(2)` says about it (links are not followed).
public struct DirectoryEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case file, directory, symbolicLink, other }

    public let name: String
    /// `directory/name`.
    public let path: String
    public let kind: Kind
    /// Modification time, epoch seconds.
    public let modified: Int
}

public enum Directory {
    /// The entries of `directory` without "." and ".." (`opendir`/`readdir`, then `lstat`), in
    /// no particular order; empty when it cannot be read. Entries that vanish meanwhile are
    /// skipped.
    public static func entries(of directory: String) -> [DirectoryEntry] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var entries: [DirectoryEntry] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            let path = directory + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            let kind: DirectoryEntry.Kind
            switch info.st_mode & S_IFMT {
            case S_IFREG: kind = .file
            case S_IFDIR: kind = .directory
            case S_IFLNK: kind = .symbolicLink
            default: kind = .other
            }
            entries.append(DirectoryEntry(name: name, path: path, kind: kind, modified: Int(info.st_mtim.tv_sec)))
        }
        return entries
    }
}
