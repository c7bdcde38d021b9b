import CameoCore
import CameoSystem
import CameoTesting
import MariaDB
import MariaDBStore
import MediaStore
import Testing

/// The stores this run can test: always the in-memory one; MariaDB when
/// `CAMEO_TEST_MARIADB_SOCKET` names a server's socket (deploy/run-tests passes the test
/// stack's), on scratch databases made afresh with the shipped migrations.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case inMemory, mariaDB

    static var available: [StoreKind] { MariaDBScratch.socket == nil ? [.inMemory] : allCases }

    var testDescription: String { rawValue }

    /// A store on the shared scratch database, or, `alone`, on one no other test touches: the
    /// maintenance sweeps act on every row, so run beside the other tests they would reject
    /// those tests' uploads under them.
    func make(alone: Bool = false) -> any MediaStore { make(database: alone ? MariaDBScratch.sweeps : MariaDBScratch.shared) }

    /// A store on a scratch database of its own (retention deletes finished rows of everyone).
    func make(database: String) -> any MediaStore {
        switch self {
        case .inMemory: return InMemoryMediaStore()
        case .mariaDB: return MariaDBMediaStore(connection: MariaDBScratch.connection(to: database))
        }
    }
}

/// The scratch databases, made once per test process.
enum MariaDBScratch {
    static let socket = SystemProcess.environment["CAMEO_TEST_MARIADB_SOCKET"]
    static let shared = "cameo_contract"
    static let sweeps = "cameo_contract_sweeps"
    static let retention = "cameo_contract_retention"
    static let repository: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    /// Administrative connection as the OS root user (unix-socket authentication).
    static func admin(database: String = "") -> Connection {
        Connection(options: ConnectOptions(unixSocket: socket, user: "root", password: "", database: database))
    }

    static let prepared: Bool = {
        Connection.initializeLibrary()
        let server = Self.admin()
        for database in [shared, sweeps, retention] {
            // DDL through prepared statements takes no placeholders for names; these are ours.
            try! server.execute("DROP DATABASE IF EXISTS \(database)")
            try! server.execute("CREATE DATABASE \(database) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            _ = try! Migrator(db: Self.admin(database: database), directory: repository + "/sql").migrate()
        }
        return true
    }()

    static func connection(to database: String = shared) -> Connection {
        precondition(prepared)
        return admin(database: database)
    }
}

/// One contract, two stores: the same tests run against the in-memory store and MariaDB.
@Suite struct StoreContractTests {
    let now = SystemClock().epochSeconds

    func upload(_ store: any MediaStore, user: String = "u\(MediaID.random().rawValue.prefix(8))", crop: Crop? = nil) throws -> MediaRecord {
        let id = MediaID.random()
        #expect(try store.createUpload(
            NewUpload(id: id, userID: user, declaredType: "image/png", declaredBytes: 1234, expiresAt: now + 300, crop: crop),
            unlessRevoked: nil, perMinute: 100) == .created)
        return try #require(try store.media(id: id))
    }

    /// An upload taken along the machine to `processing`.
    func processing(_ store: any MediaStore, user: String) throws -> MediaRecord {
        let media = try upload(store, user: user)
        #expect(try store.apply(.claim(bytes: 1234), to: media.id, from: .pendingUpload))
        #expect(try store.apply(.startScan, to: media.id, from: .received))
        #expect(try store.apply(.clean(scanMilliseconds: 3), to: media.id, from: .scanning))
        return try #require(try store.media(id: media.id))
    }

    func publication(_ media: MediaRecord, version: String) -> Publication {
        Publication(
            pointer: AvatarPointer(userID: media.userID, mediaID: media.id, version: version, sizes: [64, 512, 128, 256]),
            cdnURL: "https://cdn.example/\(media.userID)?v=\(version)",
            source: SourceFacts(mime: "image/png", width: 10, height: 20, bytes: 1234, sha256: String(repeating: "a", count: 64)),
            processingMilliseconds: 12)
    }

    @Test(arguments: StoreKind.available) func aNewUploadIsPendingWithWhatWasDeclared(_ kind: StoreKind) throws {
        let store = kind.make()
        let media = try upload(store, crop: Crop(x: 1, y: 2, size: 3))
        #expect(media.state == .pendingUpload && media.declaredType == "image/png" && media.declaredBytes == 1234)
        #expect(media.crop == Crop(x: 1, y: 2, size: 3) && media.scanAttempts == 0 && media.nextScanAt == nil && media.rejectReason == nil)
        #expect(try store.media(id: MediaID.random()) == nil)
    }

    @Test(arguments: StoreKind.available) func creationIsRefusedForRevokedTokensAndOverTheLimit(_ kind: StoreKind) throws {
        let store = kind.make()
        let jti = "jti-\(MediaID.random())"
        try store.revoke(jti: jti, expiresAt: now + 60)
        #expect(try store.isRevoked(jti: jti) && !store.isRevoked(jti: "other-\(jti)"))
        let new = { NewUpload(id: .random(), userID: "limited-\(jti)", declaredType: "image/png", declaredBytes: 1, expiresAt: now, crop: nil) }
        #expect(try store.createUpload(new(), unlessRevoked: jti, perMinute: 5) == .revoked)
        for _ in 0..<2 { #expect(try store.createUpload(new(), unlessRevoked: nil, perMinute: 2) == .created) }
        guard case .rateLimited(let retryAfter) = try store.createUpload(new(), unlessRevoked: nil, perMinute: 2) else {
            Issue.record("a third upload in a minute was admitted")
            return
        }
        #expect((1...60).contains(retryAfter))
    }

    @Test(arguments: StoreKind.available) func everyChangeIsGuardedByTheStateItLeaves(_ kind: StoreKind) throws {
        let store = kind.make()
        let media = try upload(store)
        #expect(try !store.apply(.startScan, to: media.id, from: .received), "not received yet")
        #expect(try store.apply(.claim(bytes: 99), to: media.id, from: .pendingUpload))
        #expect(try !store.apply(.claim(bytes: 99), to: media.id, from: .pendingUpload), "single use")
        #expect(try store.apply(.startScan, to: media.id, from: .received))
        #expect(try store.apply(.awaitVerdict, to: media.id, from: .scanning))
        #expect(try store.apply(.awaitVerdict, to: media.id, from: .scanning), "a guard that matches wins even if nothing changes")
        #expect(try store.apply(.infected(signature: "Eicar"), to: media.id, from: .scanning))
        #expect(try !store.apply(.clean(scanMilliseconds: nil), to: media.id, from: .scanning), "a late verdict changes nothing")
        let final = try #require(try store.media(id: media.id))
        #expect(final.state == .rejected && final.rejectReason == .infected)
        #expect(try !store.apply(.reject(.corrupt), to: media.id, from: .received))
    }

    func resumable(_ store: any MediaStore, length: Int = 1234, expiresAt: Int? = nil) throws -> MediaRecord {
        let id = MediaID.random()
        let upload = NewUpload(
            id: id, userID: "t\(id.rawValue.prefix(8))", declaredType: "image/jpeg", declaredBytes: length, expiresAt: expiresAt ?? now + 300, crop: nil,
            resumable: true)
        #expect(try store.createUpload(upload, unlessRevoked: nil, perMinute: 100) == .created)
        return try #require(try store.media(id: id))
    }

    @Test(arguments: StoreKind.available) func aResumableUploadMovesItsOffsetOnlyFromWhereItIs(_ kind: StoreKind) throws {
        let store = kind.make()
        let media = try resumable(store)
        #expect(media.state == .receiving && media.uploadOffset == 0 && media.expiresAt == now + 300)
        #expect(try upload(store).uploadOffset == nil, "a presigned upload has no offset")
        #expect(try store.recordAppend(id: media.id, at: 0, count: 1000, now: now))
        #expect(try !store.recordAppend(id: media.id, at: 0, count: 1000, now: now), "a stale offset: another append won")
        #expect(try !store.recordAppend(id: media.id, at: 1000, count: 235, now: now), "past the declared length")
        #expect(try store.media(id: media.id)?.uploadOffset == 1000)
        #expect(try !store.apply(.startScan, to: media.id, from: .received), "not received before its last byte")
        #expect(try store.recordAppend(id: media.id, at: 1000, count: 234, now: now))
        let complete = try #require(try store.media(id: media.id))
        #expect(complete.state == .received && complete.uploadOffset == 1234)
        #expect(try !store.recordAppend(id: media.id, at: 1234, count: 1, now: now), "a complete upload takes no more bytes")
        #expect(try store.apply(.startScan, to: media.id, from: .received), "and goes on like any received upload")
        #expect(try !store.apply(.terminate, to: media.id, from: .receiving))
    }

    @Test(arguments: StoreKind.available) func aUserHasABoundedNumberOfPartialUploadsOpen(_ kind: StoreKind) throws {
        let store = kind.make()
        let user = "p\(MediaID.random().rawValue.prefix(8))"
        func create(expiresAt: Int) throws -> (MediaID, UploadAdmission) {
            let id = MediaID.random()
            let upload = NewUpload(
                id: id, userID: user, declaredType: "image/jpeg", declaredBytes: 10, expiresAt: expiresAt, crop: nil, resumable: true, maxOpenPartials: 2)
            return (id, try store.createUpload(upload, unlessRevoked: nil, perMinute: 100))
        }
        let expired = try create(expiresAt: now - 5)
        #expect(expired.1 == .created)
        let first = try create(expiresAt: now + 100)
        let second = try create(expiresAt: now + 300)
        #expect(first.1 == .created && second.1 == .created, "one past its expiry does not count")
        guard case .tooManyPartials(let retryAfter) = try create(expiresAt: now + 300).1 else {
            Issue.record("a third open partial upload was admitted")
            return
        }
        #expect((99...100).contains(retryAfter), "until the first open one expires")
        #expect(try store.createUpload(
            NewUpload(id: .random(), userID: user, declaredType: "image/jpeg", declaredBytes: 1, expiresAt: now + 300, crop: nil),
            unlessRevoked: nil, perMinute: 100) == .created, "presigned uploads are not partial")
        #expect(try store.apply(.terminate, to: first.0, from: .receiving))
        let third = try create(expiresAt: now + 300)
        #expect(third.1 == .created, "terminating one makes room")
    }

    @Test(arguments: StoreKind.available) func aPartialUploadEndsWhenTerminatedOrPastItsExpiry(_ kind: StoreKind) throws {
        let store = kind.make()
        let terminated = try resumable(store)
        #expect(try store.apply(.terminate, to: terminated.id, from: .receiving))
        #expect(try store.media(id: terminated.id)?.state == .expired)
        #expect(try !store.recordAppend(id: terminated.id, at: 0, count: 1, now: now))

        let late = try resumable(store, expiresAt: now - 1)
        let live = try resumable(store)
        #expect(try store.media(id: late.id)?.isExpiredPartial(at: now) == true)
        #expect(try !store.recordAppend(id: late.id, at: 0, count: 1, now: now), "past Upload-Expires, no byte is taken")
        #expect(try store.expirePartials(now: now, limit: 1000).contains(late.id))
        #expect(try store.media(id: late.id)?.state == .expired && store.media(id: live.id)?.state == .receiving)
        #expect(try !store.expirePartials(now: now, limit: 1000).contains(live.id))
    }

    @Test(arguments: StoreKind.available) func deferredScansBackOffAndAreLeasedOnce(_ kind: StoreKind) throws {
        let store = kind.make()
        let media = try upload(store)
        _ = try store.apply(.claim(bytes: 1), to: media.id, from: .pendingUpload)
        #expect(try store.deferScan(id: media.id, now: now, baseSeconds: 5) == nil, "only from scanning")
        _ = try store.apply(.startScan, to: media.id, from: .received)
        #expect(try store.deferScan(id: media.id, now: now, baseSeconds: 5) == 1)
        #expect(try store.media(id: media.id)?.nextScanAt == now + 5)
        #expect(try store.deferScan(id: media.id, now: now, baseSeconds: 5) == 2)
        #expect(try store.media(id: media.id)?.nextScanAt == now + 10)
        #expect(try !store.dueScans(now: now + 9, limit: 1000).contains { $0.id == media.id })
        let due = try #require(try store.dueScans(now: now + 10, limit: 1000).first { $0.id == media.id })
        #expect(try store.leaseScan(id: media.id, dueAt: due.nextScanAt!, until: now + 100))
        #expect(try !store.leaseScan(id: media.id, dueAt: due.nextScanAt!, until: now + 100), "another retrier was first")
        #expect(try !store.dueScans(now: now + 10, limit: 1000).contains { $0.id == media.id })
    }

    @Test(arguments: StoreKind.available) func publishingMovesTheUsersPointerOnlyFromProcessing(_ kind: StoreKind) throws {
        let store = kind.make()
        let user = "pub-\(MediaID.random().rawValue.prefix(8))"
        let first = try processing(store, user: user)
        #expect(try store.avatar(userID: user) == nil)
        #expect(try store.publish(publication(first, version: "0123456789abcdef")) == .published(replacing: nil))
        #expect(try store.publish(publication(first, version: "0123456789abcdef")) == .notProcessing, "already ready")
        let pointer = try #require(try store.avatar(userID: user))
        #expect(pointer == AvatarPointer(userID: user, mediaID: first.id, version: "0123456789abcdef", sizes: [512, 256, 128, 64]))
        #expect(try store.media(id: first.id)?.state == .ready)
        #expect(try store.media(id: first.id)?.cdnURL == "https://cdn.example/\(user)?v=0123456789abcdef")

        let second = try processing(store, user: user)
        #expect(try store.publish(publication(second, version: "fedcba9876543210")) == .published(replacing: pointer))
        #expect(try store.avatar(userID: user)?.mediaID == second.id)
        #expect(try store.avatars(publishedSince: now - 60).contains { $0.mediaID == second.id })
        #expect(try !store.avatars(publishedSince: now - 60).contains { $0.mediaID == first.id })

        let pending = try upload(store, user: user)
        #expect(try store.publish(publication(pending, version: "1111111111111111")) == .notProcessing)
        #expect(try store.avatar(userID: user)?.mediaID == second.id)
    }

    @Test(arguments: StoreKind.available) func deleteAndUnpublishClearThePointer(_ kind: StoreKind) throws {
        let store = kind.make()
        let user = "del-\(MediaID.random().rawValue.prefix(8))"
        #expect(try store.deleteAvatar(userID: user) == nil)
        let media = try processing(store, user: user)
        _ = try store.publish(publication(media, version: "0123456789abcdef"))
        #expect(try store.deleteAvatar(userID: user)?.mediaID == media.id)
        #expect(try store.avatar(userID: user) == nil)
        #expect(try store.deleteAvatar(userID: user) == nil)

        let again = try processing(store, user: user)
        _ = try store.publish(publication(again, version: "00000000000000aa"))
        #expect(try !store.unpublish(userID: user, mediaID: media.id, signature: "X"), "not the current avatar")
        #expect(try store.unpublish(userID: user, mediaID: again.id, signature: "Rescan.Sig"))
        #expect(try store.avatar(userID: user) == nil)
        let taken = try #require(try store.media(id: again.id))
        #expect(taken.state == .rejected && taken.rejectReason == .infected)
    }

    @Test(arguments: StoreKind.available) func hitsAreCountedPerUserAndAction(_ kind: StoreKind) throws {
        let store = kind.make()
        let user = "hits-\(MediaID.random().rawValue.prefix(8))"
        for _ in 0..<3 { #expect(try store.countHit(userID: user, action: "delete", perMinute: 3, now: now) == nil) }
        let wait = try #require(try store.countHit(userID: user, action: "delete", perMinute: 3, now: now + 10))
        #expect(wait == 50)
        #expect(try store.countHit(userID: user, action: "upload", perMinute: 3, now: now) == nil)
        #expect(try store.countHit(userID: user, action: "delete", perMinute: 3, now: now + 61) == nil, "the window moved on")
    }

    @Test(arguments: StoreKind.available) func aCallbackIsRecordedOnceAndForgottenAfterItsWindow(_ kind: StoreKind) throws {
        let store = kind.make()
        let signature = MediaID.random().rawValue + MediaID.random().rawValue
        #expect(try !store.hasSeenCallback(signature))
        #expect(try store.firstUse(ofCallback: signature, expiresAt: now + 600))
        #expect(try store.hasSeenCallback(signature) && !store.firstUse(ofCallback: signature, expiresAt: now + 600))
        try store.purgeBookkeeping(now: now + 601)
        #expect(try !store.hasSeenCallback(signature))
    }

    @Test(arguments: StoreKind.available) func unansweredScansAreThoseWithNoRetryDue(_ kind: StoreKind) throws {
        let store = kind.make()     // it only reads; the sweeps, which change every row, have their own
        let waiting = try upload(store)
        #expect(try store.apply(.claim(bytes: 1), to: waiting.id, from: .pendingUpload))
        #expect(try store.apply(.startScan, to: waiting.id, from: .received))
        #expect(try store.apply(.awaitVerdict, to: waiting.id, from: .scanning))
        let retrying = try upload(store)
        #expect(try store.apply(.claim(bytes: 1), to: retrying.id, from: .pendingUpload))
        #expect(try store.apply(.startScan, to: retrying.id, from: .received))
        _ = try store.deferScan(id: retrying.id, now: now, baseSeconds: 5)
        let soon = SystemClock().epochSeconds + 2
        let found = try store.unanswered(untouchedSince: soon, limit: 1000).map(\.id)
        #expect(found.contains(waiting.id) && !found.contains(retrying.id))
        #expect(try store.unanswered(untouchedSince: now - 3600, limit: 1000).map(\.id).contains(waiting.id) == false)
    }

    @Test(arguments: StoreKind.available) func maintenanceExpiresAndRejectsOnlyWhatIsOld(_ kind: StoreKind) throws {
        let store = kind.make(alone: true)
        let unused = try upload(store)
        let stuck = try upload(store)
        _ = try store.apply(.claim(bytes: 1), to: stuck.id, from: .pendingUpload)
        #expect(try store.expireUnused(createdBefore: now - 3600) >= 0)
        #expect(try store.media(id: unused.id)?.state == .pendingUpload, "too young")
        _ = try store.rejectStale(untouchedSince: now - 3600)
        #expect(try store.media(id: stuck.id)?.state == .received, "too young")
        // Cutoffs just past "now" as it is after the rows were made: a loaded machine may run
        // this test seconds after the suite read the clock.
        let soon = SystemClock().epochSeconds + 2
        #expect(try store.expireUnused(createdBefore: soon) >= 1)
        #expect(try store.media(id: unused.id)?.state == .expired)
        #expect(try store.rejectStale(untouchedSince: soon) >= 1)
        #expect(try store.media(id: stuck.id)?.rejectReason == .scanFailed)
        try store.purgeBookkeeping(now: now)
        #expect(store.isReachable())
    }

    @Test(arguments: StoreKind.available) func erasingAUserLeavesNoRowOfTheirsAndEveryoneElsesIntact(_ kind: StoreKind) throws {
        let store = kind.make()
        let user = "erase-\(MediaID.random().rawValue.prefix(8))"
        let avatar = try processing(store, user: user)
        _ = try store.publish(publication(avatar, version: "0123456789abcdef"))
        let pending = try upload(store, user: user)
        #expect(try store.countHit(userID: user, action: "upload", perMinute: 1, now: now) == nil)
        let bystander = try upload(store)

        #expect(Set(try store.eraseUser(user)) == [avatar.id, pending.id])
        #expect(try store.media(id: avatar.id) == nil && store.media(id: pending.id) == nil)
        #expect(try store.avatar(userID: user) == nil)
        #expect(try store.countHit(userID: user, action: "upload", perMinute: 1, now: now) == nil, "the hit went too")
        #expect(try store.media(id: bystander.id) != nil)
        #expect(try store.eraseUser(user).isEmpty)
    }

    @Test(arguments: StoreKind.available) func retentionKeepsCurrentAvatarsAndUnfinishedUploads(_ kind: StoreKind) throws {
        let store = kind.make(database: MariaDBScratch.retention)
        let user = "keep-\(MediaID.random().rawValue.prefix(8))"
        let current = try processing(store, user: user)
        _ = try store.publish(publication(current, version: "0123456789abcdef"))
        let open = try upload(store, user: user)
        var rejected: [MediaID] = []
        for _ in 0..<3 {
            let media = try upload(store, user: user)
            #expect(try store.apply(.claim(bytes: 1), to: media.id, from: .pendingUpload))
            #expect(try store.apply(.reject(.corrupt), to: media.id, from: .received))
            rejected.append(media.id)
        }
        #expect(try store.pruneFinished(untouchedSince: now - 3600, limit: 1000) == 0, "all too young")
        let soon = SystemClock().epochSeconds + 2
        #expect(try store.pruneFinished(untouchedSince: soon, limit: 1) == 1, "a batch at a time")
        #expect(try store.pruneFinished(untouchedSince: soon, limit: 1000) == 2)
        #expect(try rejected.allSatisfy { try store.media(id: $0) == nil })
        #expect(try store.media(id: current.id)?.state == .ready, "the current avatar stays")
        #expect(try store.media(id: open.id)?.state == .pendingUpload, "an unfinished upload stays")
        #expect(try store.pruneAnalytics(before: now - 3600, limit: 1000) == 0)
        #expect(try store.pruneAnalytics(before: soon, limit: 1000) == 1, "the avatar_uploaded event")
    }

    @Test func theSchemasStateColumnHoldsExactlyTheMachinesStates() throws {
        guard MariaDBScratch.socket != nil else { return }
        let rows = try MariaDBScratch.connection().query(
            "SELECT COLUMN_TYPE AS type FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'media_files' AND COLUMN_NAME = 'state'")
        let type = try #require(rows.first?.string("type"))
        #expect(type == "enum(" + MediaState.allCases.map { "'\($0.rawValue)'" }.joined(separator: ",") + ")")
    }

    @Test func everyTableHasAPrimaryKey() throws {
        guard MariaDBScratch.socket != nil else { return }
        let rows = try MariaDBScratch.connection().query(
            """
            SELECT t.TABLE_NAME AS name FROM information_schema.TABLES t
            WHERE t.TABLE_SCHEMA = DATABASE() AND NOT EXISTS (
                SELECT 1 FROM information_schema.TABLE_CONSTRAINTS c
                WHERE c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME AND c.CONSTRAINT_TYPE = 'PRIMARY KEY')
            """)
        #expect(rows.compactMap { $0.string("name") } == [], "Galera needs a primary key on every table")
    }
}

/// deploy/run-tests sets `CAMEO_TEST_REQUIRE_SERVERS`: then a missing server fails the run
/// instead of skipping the tests that need it.
@Suite struct TestServersTests {
    @Test func theServersAreThereWhenRequired() {
        guard SystemProcess.environment["CAMEO_TEST_REQUIRE_SERVERS"] != nil else { return }
        #expect(MariaDBScratch.socket != nil, "CAMEO_TEST_MARIADB_SOCKET is not set")
        #expect(GaleraTests.sockets.count == 2, "CAMEO_GALERA_SOCKETS does not name two nodes")
    }
}

/// The state machine's table is the diagram in docs/ARCHITECTURE.md.
@Suite struct StateMachineTests {
    @Test func finalStatesAreLeftOnlyByUnpublish() {
        for transition in MediaTransition.allCases where transition.from.contains(where: \.isFinal) {
            #expect(transition == .unpublish, "\(transition) leaves a final state")
        }
        for state in MediaState.allCases where !state.isFinal {
            #expect(MediaTransition.allCases.contains { $0.allows(from: state) }, "\(state) has no way out")
        }
    }

    @Test func theArchitectureDocumentShowsTheTable() throws {
        let path = MariaDBScratch.repository + "/docs/ARCHITECTURE.md"
        let text = String(decoding: try FileSystem.read(path, limit: 1 << 20), as: UTF8.self)
        #expect(text.contains(MediaTransition.markdownTable), "docs/ARCHITECTURE.md's state table differs from MediaTransition.table:\n\(MediaTransition.markdownTable)")
    }
}
