import CameoCore
import CameoService
import CameoSystem
import CameoTesting
import Dispatch
import Foundation
import MariaDB
import MariaDBStore
import MediaStore
import Testing

/// Publishes and deletes of one user's avatar, issued against the two nodes of a MariaDB
/// Galera cluster (deploy/galera-cluster; deploy/run-tests starts one and sets
/// `CAMEO_GALERA_SOCKETS` and `CAMEO_GALERA_PASSWORD`), with publishers paused between their
/// commit and their file operations. On Galera a named lock is node-local and `SELECT … FOR
/// UPDATE` does not block the other node, so only versioned rows and files that follow the
/// store can leave the pointer, the files and the rows in agreement.
@Suite(.serialized) struct GaleraTests {
    static let sockets = SystemProcess.environment["CAMEO_GALERA_SOCKETS"]?.split(separator: ",").map(String.init) ?? []
    static let password = SystemProcess.environment["CAMEO_GALERA_PASSWORD"] ?? ""

    static let migrated: Bool = {
        Connection.initializeLibrary()
        _ = try! Migrator(db: connection(node: 0), directory: MariaDBScratch.repository + "/sql").migrate()
        return true
    }()

    static func connection(node: Int) -> Connection {
        Connection(options: ConnectOptions(unixSocket: sockets[node], user: "cameo", password: password, database: "cameo"))
    }

    /// A service whose store is on `node`, sharing the media folder `root`.
    static func worker(node: Int, root: String, hooks: PipelineHooks = PipelineHooks()) throws -> ServiceHarness {
        precondition(migrated)
        return try ServiceHarness(store: MariaDBMediaStore(connection: connection(node: node)), mediaRoot: root, hooks: hooks)
    }

    static func mediaRoot() throws -> String {
        let root = "/tmp/cameo-galera-\(MediaID.random())"
        try FileSystem.makeDirectory(root, mode: 0o700)
        return root
    }

    let red = TestImages.png(width: 64, height: 64) { _, _ in (220, 20, 20) }
    let blue = TestImages.png(width: 64, height: 64) { _, _ in (20, 20, 220) }

    /// The pointer as both nodes see it, the records, and the files agree: every stable name
    /// links to the current version's own file, which exists; without an avatar there are no
    /// links and no version files.
    func expectAgreement(user: String, current expected: MediaID?, workers: [ServiceHarness], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let pointers = try workers.map { try $0.store.avatar(userID: user) }
        #expect(pointers.allSatisfy { $0 == pointers[0] }, "the nodes disagree: \(pointers)", sourceLocation: sourceLocation)
        #expect(pointers[0]?.mediaID == expected, "pointer \(String(describing: pointers[0]?.mediaID)), expected \(String(describing: expected))", sourceLocation: sourceLocation)
        let folder = workers[0].root.userFolder(user)
        let names = Directory.entries(of: folder)
        guard let pointer = pointers[0] else {
            #expect(names.isEmpty, "no avatar, but files: \(names.map(\.name))", sourceLocation: sourceLocation)
            return
        }
        #expect(try workers[0].store.media(id: pointer.mediaID)?.state == .ready, sourceLocation: sourceLocation)
        for size in pointer.sizes {
            let stem = size == pointer.sizes[0] ? "avatar" : "avatar-\(size)"
            #expect(FileSystem.readLink("\(folder)/\(stem).webp") == "\(stem).\(pointer.version).webp", "\(stem).webp", sourceLocation: sourceLocation)
            #expect(FileSystem.exists("\(folder)/\(stem).webp"), "\(stem).webp resolves", sourceLocation: sourceLocation)
        }
        #expect(!names.contains { $0.name.hasPrefix(".") }, "leftovers: \(names.map(\.name))", sourceLocation: sourceLocation)
    }

    /// Runs `body` on its own thread; `wait()` joins it.
    final class Background: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private var result: Result<(MediaID, HTTPResponse), any Error>?
        init(_ body: @escaping @Sendable () throws -> (MediaID, HTTPResponse)) {
            Thread {
                self.result = Result { try body() }
                self.done.signal()
            }.start()
        }
        private var joined = false
        func wait() throws -> (MediaID, HTTPResponse) {
            if !joined {
                done.wait()
                joined = true
            }
            return try result!.get()
        }
    }

    /// A hook that stops its thread until the test lets it go, noting which upload it held.
    final class Gate: @unchecked Sendable {
        let arrived = DispatchSemaphore(value: 0)
        let proceed = DispatchSemaphore(value: 0)
        private(set) var held: MediaID?
        func pass(_ id: MediaID) {
            held = id
            arrived.signal()
            proceed.wait()
        }
    }

    final class Unchecked<Value>: @unchecked Sendable {
        let value: Value
        init(_ value: Value) { self.value = value }
    }

    /// A publisher on node 1 that stops after its commit, before its files, and a worker on
    /// node 2 for what happens meanwhile; `meanwhile` runs while the publisher waits.
    func racePausedPublish(_ scenario: String, meanwhile: (ServiceHarness, String) throws -> Void) throws -> (user: String, published: MediaID, workers: [ServiceHarness]) {
        let root = try Self.mediaRoot()
        let user = "galera-\(scenario)-\(MediaID.random().rawValue.prefix(6))"
        let gate = Gate()
        let publisher = Unchecked(try Self.worker(node: 0, root: root, hooks: PipelineHooks(afterPublishCommit: { gate.pass($0) })))
        let other = try Self.worker(node: 1, root: root)
        let red = red
        let publishing = Background { try publisher.value.upload(user, red) }
        gate.arrived.wait()
        try meanwhile(other, user)
        gate.proceed.signal()
        let (id, response) = try publishing.wait()
        #expect(response.status == 200)
        #expect(try other.store.media(id: id)?.state == .ready)
        return (user, id, [publisher.value, other])
    }

    @Test(.enabled(if: sockets.count == 2)) func aPublishThatCommittedFirstButFinishesLastLeavesTheLaterOneShowing() throws {
        var later: MediaID?
        let race = try racePausedPublish("later") { other, user in
            let (id, response) = try other.upload(user, blue)
            #expect(response.status == 200)
            later = id
        }
        try expectAgreement(user: race.user, current: later, workers: race.workers)
    }

    @Test(.enabled(if: sockets.count == 2)) func aDeleteOnTheOtherNodeDuringAPublishLeavesNoAvatar() throws {
        let race = try racePausedPublish("delete") { other, user in #expect(other.profile("DELETE", user).status == 204) }
        try expectAgreement(user: race.user, current: nil, workers: race.workers)
    }

    @Test(.enabled(if: sockets.count == 2)) func concurrentPublishesOnBothNodesEndOnTheLastCommitWhoeverFinishesLast() throws {
        let root = try Self.mediaRoot()
        let user = "galera-c-\(MediaID.random().rawValue.prefix(6))"
        let before = [Gate(), Gate()]
        let after = [Gate(), Gate()]
        let workers = try (0..<2).map { node in
            try Self.worker(
                node: node, root: root,
                hooks: PipelineHooks(beforePublish: { before[node].pass($0) }, afterPublishCommit: { after[node].pass($0) }))
        }
        let shared = Unchecked(workers)
        let images = [red, blue]
        let runs = (0..<2).map { node in Background { try shared.value[node].upload(user, images[node]) } }
        for gate in before { gate.arrived.wait() }
        // Both transactions run at once on two nodes: certification lets one commit first, the
        // other learns it at COMMIT (1213) and runs again whole.
        for gate in before { gate.proceed.signal() }
        for gate in after { gate.arrived.wait() }
        let winner = try #require(try workers[0].store.avatar(userID: user))
        // The last committer settles first; the one that committed earlier finishes last.
        let lastCommitter = after[0].held == winner.mediaID ? 0 : 1
        #expect(after[lastCommitter].held == winner.mediaID)
        after[lastCommitter].proceed.signal()
        _ = try runs[lastCommitter].wait()
        after[1 - lastCommitter].proceed.signal()
        let results = try runs.map { try $0.wait() }
        #expect(results.allSatisfy { $0.1.status == 200 })
        try expectAgreement(user: user, current: winner.mediaID, workers: workers)
    }
}
