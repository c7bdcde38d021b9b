public import CameoCore
import CameoCrypto
import CameoSystem
public import MediaStore

/// The folders under the media root (SPEC §3). Every path is built here from validated ids;
/// no client-chosen name ever reaches the file system.
public struct MediaRoot: Sendable {
    public let path: String

    public init(_ path: String) { self.path = path }

    /// Uploads between their arrival and a final state: 0700, never served.
    public var quarantine: String { path + "/quarantine" }
    /// Where nginx buffers upload bodies (on the same file system, so they are renamed, not copied).
    public var incoming: String { path + "/incoming" }
    /// Published avatars, one folder per user, served by nginx.
    public var published: String { path + "/profile-media" }

    public func quarantined(_ id: MediaID) -> String { quarantine + "/" + id.rawValue }
    public func userFolder(_ userID: String) -> String { published + "/" + userID }
}

/// The names of a user's published files and their public URLs. Each published version has
/// files of its own, named by its content hash and never overwritten (`avatar.{v}.webp`,
/// `avatar-{size}.{v}.webp`); the stable names (`avatar.webp`, `avatar-{size}.webp`) are
/// symbolic links to the current version's. nginx serves `?v={v}` from the version's own file
/// and the bare name through the link. Names starting with "." (staging, trash) are never served.
public struct AvatarLayout: Sendable {
    /// Prefix of avatar URLs (`cdn_base_url`).
    public let baseURL: String

    public init(baseURL: String) { self.baseURL = baseURL }

    /// `avatar` for the largest size, `avatar-{size}` for the others.
    static func stem(size: Int, largest: Int) -> String { size == largest ? "avatar" : "avatar-\(size)" }
    static func stableName(size: Int, largest: Int) -> String { stem(size: size, largest: largest) + ".webp" }
    static func versionName(size: Int, largest: Int, version: String) -> String { stem(size: size, largest: largest) + ".\(version).webp" }

    /// The version a file belongs to, for `avatar[-N].{16 hex}.webp`; nil for other names.
    static func version(ofFileNamed name: String) -> String? {
        let parts = name.split(separator: ".")
        guard parts.count == 3, parts[2] == "webp", parts[0] == "avatar" || parts[0].hasPrefix("avatar-"),
            parts[1].utf8.count == 16, parts[1].utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
        else { return nil }
        return String(parts[1])
    }

    /// The version of a set of renditions: the first 16 hex digits of the SHA-256 of all of
    /// them, so the same pixels in give the same URL, and any change gives a new one.
    static func version(of renditions: [Int: [UInt8]]) -> String {
        let all = renditions.keys.sorted(by: >).flatMap { renditions[$0]! }
        return String(Digest.sha256(all).hexString.prefix(16))
    }

    /// The versioned public URL of the largest size.
    public func url(of pointer: AvatarPointer) -> String { url(userID: pointer.userID, size: pointer.sizes.first ?? 0, of: pointer) }

    func url(userID: String, size: Int, of pointer: AvatarPointer) -> String {
        "\(baseURL)/profile-media/\(userID)/\(Self.stableName(size: size, largest: pointer.sizes.first ?? size))?v=\(pointer.version)"
    }

    /// `{"512": url, "256": url, ...}`
    public func variants(of pointer: AvatarPointer) -> JSONValue {
        .object(pointer.sizes.map { (String($0), .string(url(userID: pointer.userID, size: $0, of: pointer))) })
    }
}

/// A published avatar as the API shows it.
public struct PublishedAvatar: Sendable, Equatable {
    public let pointer: AvatarPointer
    public let url: String
    public let variants: JSONValue

    init(_ pointer: AvatarPointer, layout: AvatarLayout) {
        self.pointer = pointer
        url = layout.url(of: pointer)
        variants = layout.variants(of: pointer)
    }

    /// `{"media_id", "state": "ready", "avatar_url", "variants"}`
    var json: JSONValue {
        .object([
            ("media_id", .string(pointer.mediaID.rawValue)), ("state", .string(MediaState.ready.rawValue)), ("avatar_url", .string(url)),
            ("variants", variants),
        ])
    }
}

/// The files of users' folders, kept in line with the store: the one place that writes,
/// points and removes published files.
///
/// A database version cannot order file operations that follow a commit, so nobody orders
/// them: every publisher, delete and sweep, after its commit, reads what the store says is
/// current and makes the folder match (`settle`), then reads again and repeats until the two
/// reads agree. Whoever finishes last therefore leaves the folder right. Version files are
/// immutable, so pointing at one never races with writing it; removing one goes through the
/// trash (rename aside, read the store again, restore it if it became current meanwhile).
public struct AvatarFiles: Sendable {
    let root: MediaRoot
    let store: any MediaStore

    /// Which versions other than the current one a settle removes.
    public enum Prune: Sendable, Equatable {
        /// None: a publish leaves the previous version for the sweeper (cached pages keep working).
        case none
        /// Every other version: a delete or a takedown.
        case all
        /// Versions whose files are older than this (epoch seconds), and every version of a user
        /// without an avatar (a delete whose own settle failed): the sweeper.
        case olderThan(Int)
    }

    /// A publisher's own version, which it can write again if a stale delete removed it.
    struct OwnVersion {
        let version: String
        let renditions: [Int: [UInt8]]
    }

    /// Writes a version's files under their own names (a temporary file, then `link`, which
    /// never replaces: an existing file of the same version has the same bytes). A file there
    /// already is kept: a publisher's settle finds its own files, written before its commit,
    /// and writes nothing again unless a delete removed them meanwhile.
    func write(_ own: OwnVersion, userID: String) throws(SystemError) {
        let folder = root.userFolder(userID)
        let largest = own.renditions.keys.max() ?? 0
        try inFolder(folder) { () throws(SystemError) in
            for (size, bytes) in own.renditions {
                let final = folder + "/" + AvatarLayout.versionName(size: size, largest: largest, version: own.version)
                if FileSystem.exists(final) { continue }
                let temporary = folder + "/.\(MediaID.random()).tmp"
                try FileSystem.writeNew(bytes, to: temporary, mode: 0o644)
                defer { FileSystem.remove(temporary) }
                do throws(SystemError) {
                    try FileSystem.link(temporary, as: final)
                } catch where error.isAlreadyExisting {
                    // Another publisher of the same pixels was first: same bytes.
                }
            }
        }
    }

    /// Runs `body` in `folder`, creating it first, and again if a concurrent delete's settle
    /// removed the (then empty) folder in between.
    private func inFolder(_ folder: String, _ body: () throws(SystemError) -> Void) throws(SystemError) {
        var attempt = 0
        while true {
            attempt += 1
            try FileSystem.makeDirectory(folder, mode: 0o755)
            do {
                return try body()
            } catch where error.isNotFound && attempt < 4 {
                continue
            }
        }
    }

    /// Marks the files of a version that was just replaced as fresh, so the sweeper's grace
    /// period counts from its replacement, not from its upload.
    func retire(_ pointer: AvatarPointer) {
        let folder = root.userFolder(pointer.userID)
        let largest = pointer.sizes.first ?? 0
        for size in pointer.sizes {
            try? FileSystem.touch(folder + "/" + AvatarLayout.versionName(size: size, largest: largest, version: pointer.version))
        }
    }

    /// Makes `userID`'s folder match the store (see the type's comment). `own` is the
    /// caller's freshly published version; `prune` says what else goes.
    func settle(userID: String, own: OwnVersion? = nil, prune: Prune = .none) throws {
        var current = try store.avatar(userID: userID)
        for _ in 0..<8 {
            if let own, current?.version == own.version { try write(own, userID: userID) }
            try point(userID: userID, at: current)
            let trashed = trash(userID: userID, keeping: current?.version, prune: prune)
            let after = try store.avatar(userID: userID)
            for (aside, original) in trashed {
                if after.map({ AvatarLayout.version(ofFileNamed: Self.name(original)) == $0.version }) == true {
                    try? FileSystem.link(aside, as: original)
                }
                FileSystem.remove(aside)
            }
            if after == current {
                if current == nil { FileSystem.removeDirectory(root.userFolder(userID)) }
                return
            }
            current = after
        }
        // Someone keeps changing this avatar; each of them settles after their own commit.
        Log.message("avatar files of \(userID) still changing after 8 rounds; left to the last writer")
    }

    /// Points the stable names at `pointer`'s version (a new link renamed over the old one, so
    /// a reader never finds none), or removes them when there is no avatar.
    ///
    /// A stable name that is a regular file comes from the layout before versioned files
    /// (those were the current avatar's bytes): it is kept as the current version's file of its
    /// size before the link replaces it, so an upgrade loses nothing and old `?v=` URLs work.
    func point(userID: String, at pointer: AvatarPointer?) throws(SystemError) {
        let folder = root.userFolder(userID)
        let entries = Directory.entries(of: folder)
        let stable = entries.filter { !$0.name.hasPrefix(".") && AvatarLayout.version(ofFileNamed: $0.name) == nil && $0.kind != .directory }
        guard let pointer else {
            for entry in stable { FileSystem.remove(entry.path) }
            return
        }
        let largest = pointer.sizes.first ?? 0
        var wanted: Set<String> = []
        try inFolder(folder) { () throws(SystemError) in
            for size in pointer.sizes {
                let name = AvatarLayout.stableName(size: size, largest: largest)
                let target = AvatarLayout.versionName(size: size, largest: largest, version: pointer.version)
                wanted.insert(name)
                if stable.contains(where: { $0.name == name && $0.kind == .file }) {
                    try? FileSystem.link(folder + "/" + name, as: folder + "/" + target)
                }
                // Always made anew: a cached "already right" could be stale on a shared file system.
                let temporary = folder + "/.\(MediaID.random()).link"
                try FileSystem.symlink(target, at: temporary)
                do throws(SystemError) {
                    try FileSystem.rename(temporary, to: folder + "/" + name)
                } catch {
                    FileSystem.remove(temporary)
                    throw error
                }
            }
        }
        // Stable names of sizes the current version does not have (the configured sizes changed).
        for entry in stable where !wanted.contains(entry.name) { FileSystem.remove(entry.path) }
    }

    /// Renames the files of versions other than `keeping` that `prune` selects to hidden
    /// names; returns (hidden, original) pairs for the caller to restore or remove.
    private func trash(userID: String, keeping: String?, prune: Prune) -> [(String, String)] {
        if prune == .none { return [] }
        let folder = root.userFolder(userID)
        var trashed: [(String, String)] = []
        for entry in Directory.entries(of: folder) where entry.kind == .file {
            guard let version = AvatarLayout.version(ofFileNamed: entry.name), version != keeping else { continue }
            if case .olderThan(let cutoff) = prune, keeping != nil, entry.modified >= cutoff { continue }
            let aside = folder + "/.\(MediaID.random()).trash"
            guard (try? FileSystem.rename(entry.path, to: aside)) != nil else { continue }
            // rename keeps the old time; a fresh one keeps another sweeper from taking the
            // aside for an old leftover before this settle restores or removes it.
            try? FileSystem.touch(aside)
            trashed.append((aside, entry.path))
        }
        return trashed
    }

    private static func name(_ path: String) -> String { String(path.split(separator: "/").last ?? "") }

    /// Users with a folder under `profile-media/`.
    func userIDs() -> [String] {
        Directory.entries(of: root.published).filter { $0.kind == .directory && !$0.name.hasPrefix(".") }.map(\.name)
    }

    /// Hidden leftovers in a user's folder (staging, trash, links being made) older than `cutoff`.
    func leftovers(userID: String, olderThan cutoff: Int) -> [String] {
        Directory.entries(of: root.userFolder(userID)).filter { $0.name.hasPrefix(".") && $0.modified < cutoff }.map(\.path)
    }

    /// The bytes of one size of a version, for a rescan.
    func read(_ pointer: AvatarPointer, size: Int, limit: Int) throws(SystemError) -> [UInt8] {
        let name = AvatarLayout.versionName(size: size, largest: pointer.sizes.first ?? size, version: pointer.version)
        return try FileSystem.read(root.userFolder(pointer.userID) + "/" + name, limit: limit)
    }
}
