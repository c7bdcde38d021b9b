internal import CMariaDB
#if canImport(Glibc)
import Glibc
#endif

/// Where and how to connect. The socket path is preferred: the server listens on no TCP port.
public struct ConnectOptions: Sendable {
    public var unixSocket: String?
    public var host: String
    public var port: UInt32
    public var user: String
    public var password: String
    public var database: String
    public var connectTimeoutSeconds: UInt32
    /// Read and write timeout of each statement.
    public var ioTimeoutSeconds: UInt32 = 30

    public init(
        unixSocket: String?, host: String = "localhost", port: UInt32 = 3306, user: String, password: String,
        database: String, connectTimeoutSeconds: UInt32 = 3
    ) {
        self.unixSocket = unixSocket
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.connectTimeoutSeconds = connectTimeoutSeconds
    }
}

/// One MariaDB connection (`MYSQL*`) with a cache of prepared statements.
///
/// Every statement goes through `mysql_stmt_prepare` and binds its parameters; no SQL text is
/// ever built from input. A connection belongs to one worker process and is not shared between
/// threads. It connects lazily and reconnects once when the server went away.
public final class Connection {
    private let options: ConnectOptions
    private var handle: UnsafeMutablePointer<MYSQL>?
    private var statements: [String: UnsafeMutablePointer<MYSQL_STMT>] = [:]
    /// Inside `transaction`: a lost connection must fail the transaction, never be retried
    /// statement by statement on a new one.
    private var inTransaction = false

    /// Makes a connection that connects on first use.
    public init(options: ConnectOptions) {
        self.options = options
    }

    deinit { disconnect() }

    /// CLIENT_FOUND_ROWS: an UPDATE reports the rows its WHERE matched, not only those whose
    /// values changed, so a guarded update that sets a value already there still says it won.
    private static let clientFoundRows: UInt = 2

    /// Calls `mysql_library_init` once per process, before any thread uses the library.
    public static func initializeLibrary() {
        mysql_server_init(0, nil, nil)
    }

    /// Runs a statement that returns no rows; returns the number of affected rows.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [DatabaseValue] = []) throws(DatabaseError) -> Int {
        try retryingOnce { () throws(DatabaseError) in
            let statement = try prepared(sql)
            try run(statement, parameters)
            let affected = Int(mysql_stmt_affected_rows(statement))
            mysql_stmt_free_result(statement)
            return affected
        }
    }

    /// Runs a query and returns all its rows.
    public func query(_ sql: String, _ parameters: [DatabaseValue] = []) throws(DatabaseError) -> [Row] {
        try retryingOnce { () throws(DatabaseError) in
            let statement = try prepared(sql)
            try run(statement, parameters)
            return try fetchAll(statement)
        }
    }

    /// Runs `body` inside a transaction: committed when it returns, rolled back when it throws.
    ///
    /// A transaction that loses a conflict runs again whole, up to `attempts` times, after a
    /// short random pause: the server's deadlock or lock-wait verdict (1213, 1205) at any
    /// statement or at COMMIT (a Galera node reports a write set that lost certification to
    /// another node's this way, at COMMIT), or a `TransactionConflict` thrown by `body` when
    /// one of its guarded statements found the row changed under it. Only a COMMIT that
    /// succeeded counts: the result is returned after it.
    public func transaction<T>(attempts: Int = 5, _ body: () throws -> T) throws -> T {
        var attempt = 1
        while true {
            do {
                return try transactionOnce(body)
            } catch let error where attempt < attempts && (error is TransactionConflict || (error as? DatabaseError)?.isRolledBack == true) {
                attempt += 1
                // 1-8 ms, so two retrying writers do not collide again in lockstep.
                usleep(UInt32.random(in: 1_000...8_000))
            }
        }
    }

    private func transactionOnce<T>(_ body: () throws -> T) throws -> T {
        try execute("START TRANSACTION")
        inTransaction = true
        defer { inTransaction = false }
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            // If the connection is gone the server rolls back by itself; otherwise roll back
            // here. Either way the caller sees the original error.
            if (try? execute("ROLLBACK")) == nil { disconnect() }
            throw error
        }
    }

    /// True when the server answers (`mysql_ping`), connecting first if needed. A connection
    /// the server dropped (it restarted, or timed the session out) is replaced once.
    public func ping() -> Bool {
        for _ in 0..<2 {
            if let mysql = try? connected(), mysql_ping(mysql) == 0 { return true }
            disconnect()
        }
        return false
    }

    /// Closes the connection and its statements.
    public func disconnect() {
        for statement in statements.values { mysql_stmt_close(statement) }
        statements.removeAll()
        if let handle { mysql_close(handle) }
        handle = nil
    }

    // MARK: - Internals

    /// Runs `body`, and once more on a new connection if the old one was found gone before
    /// the statement reached the server. A statement that may have run (the connection broke
    /// mid-query) is never repeated: a guarded UPDATE would then report 0 rows, an INSERT a
    /// duplicate. Nothing is retried inside a transaction.
    private func retryingOnce<T>(_ body: () throws(DatabaseError) -> T) throws(DatabaseError) -> T {
        if !inTransaction, let handle, Self.peerClosed(handle) {
            // The server closed this idle connection (restart, wait_timeout): start afresh.
            disconnect()
        }
        do {
            return try body()
        } catch let error where error.isNotSent && !inTransaction && handle != nil {
            disconnect()
            return try body()
        } catch let error where error.isRolledBack && !inTransaction {
            // The server undid the statement (deadlock victim): running it again is safe.
            return try body()
        }
    }

    /// True when the server has closed an idle connection: the socket is readable (EOF or a
    /// farewell error packet) although no query is outstanding. `poll` with no wait.
    private static func peerClosed(_ mysql: UnsafeMutablePointer<MYSQL>) -> Bool {
        var descriptor = pollfd(fd: Int32(mysql_get_socket(mysql)), events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) > 0
    }

    private func connected() throws(DatabaseError) -> UnsafeMutablePointer<MYSQL> {
        if let handle { return handle }
        guard let mysql = mysql_init(nil) else { throw .connect(code: 0, message: "mysql_init failed") }
        var timeout = options.connectTimeoutSeconds
        mysql_options(mysql, MYSQL_OPT_CONNECT_TIMEOUT, &timeout)
        // A hung server must not hold a worker forever.
        var ioTimeout = options.ioTimeoutSeconds
        mysql_options(mysql, MYSQL_OPT_READ_TIMEOUT, &ioTimeout)
        mysql_options(mysql, MYSQL_OPT_WRITE_TIMEOUT, &ioTimeout)
        mysql_options(mysql, MYSQL_SET_CHARSET_NAME, "utf8mb4")
        // READ COMMITTED: the reads inside INSERT ... SELECT (the revocation and per-user
        // checks of a new upload) are consistent reads that take no gap locks, so concurrent
        // uploads of different users do not deadlock on the media_files index.
        mysql_options(mysql, MYSQL_INIT_COMMAND, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        // Causal reads on a Galera cluster: a read waits until this node has applied what other
        // nodes committed before it, so a worker that reads the avatar pointer after another
        // node's publish sees it. A server built with wsrep (Debian's MariaDB) but not in a
        // cluster accepts the setting and ignores it.
        mysql_options(mysql, MYSQL_INIT_COMMAND, "SET SESSION wsrep_sync_wait = 1")
        let ok = mysql_real_connect(
            mysql, options.unixSocket == nil ? options.host : "localhost", options.user, options.password,
            options.database, options.port, options.unixSocket, Self.clientFoundRows)
        guard ok != nil else {
            let error = DatabaseError.connect(code: mysql_errno(mysql), message: String(cString: mysql_error(mysql)))
            mysql_close(mysql)
            throw error
        }
        handle = mysql
        return mysql
    }

    private func prepared(_ sql: String) throws(DatabaseError) -> UnsafeMutablePointer<MYSQL_STMT> {
        if let statement = statements[sql] { return statement }
        let mysql = try connected()
        guard let statement = mysql_stmt_init(mysql) else {
            throw .server(code: mysql_errno(mysql), sqlState: "HY000", message: "mysql_stmt_init failed")
        }
        let bytes = Array(sql.utf8)
        let status = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { mysql_stmt_prepare(statement, $0.baseAddress, UInt(buffer.count)) }
        }
        guard status == 0 else {
            let error = Self.error(of: statement)
            mysql_stmt_close(statement)
            throw error
        }
        statements[sql] = statement
        return statement
    }

    private static func error(of statement: UnsafeMutablePointer<MYSQL_STMT>) -> DatabaseError {
        .server(
            code: mysql_stmt_errno(statement), sqlState: String(cString: mysql_stmt_sqlstate(statement)),
            message: String(cString: mysql_stmt_error(statement)))
    }

    /// Binds `parameters` and executes. Parameter buffers only need to live until
    /// `mysql_stmt_execute` returns, which sends them to the server.
    private func run(_ statement: UnsafeMutablePointer<MYSQL_STMT>, _ parameters: [DatabaseValue]) throws(DatabaseError) {
        let expected = Int(mysql_stmt_param_count(statement))
        guard expected == parameters.count else { throw .parameterCount(expected: expected, given: parameters.count) }
        if parameters.isEmpty {
            guard mysql_stmt_execute(statement) == 0 else { throw Self.error(of: statement) }
            return
        }
        let binds = UnsafeMutablePointer<MYSQL_BIND>.allocate(capacity: parameters.count)
        binds.initialize(repeating: MYSQL_BIND(), count: parameters.count)
        var buffers: [UnsafeMutableRawPointer] = []
        defer {
            for buffer in buffers { buffer.deallocate() }
            binds.deallocate()
        }
        for (index, value) in parameters.enumerated() {
            switch value {
            case .null:
                binds[index].buffer_type = MYSQL_TYPE_NULL
            case .int(let number):
                let buffer = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 8)
                buffer.storeBytes(of: number, as: Int64.self)
                buffers.append(buffer)
                binds[index].buffer_type = MYSQL_TYPE_LONGLONG
                binds[index].buffer = buffer
            case .text(let text):
                let bytes = Array(text.utf8)
                binds[index] = Self.bytesBind(bytes, type: MYSQL_TYPE_STRING, buffers: &buffers)
            case .blob(let bytes):
                binds[index] = Self.bytesBind(bytes, type: MYSQL_TYPE_BLOB, buffers: &buffers)
            }
        }
        guard mysql_stmt_bind_param(statement, binds) == 0, mysql_stmt_execute(statement) == 0 else {
            throw Self.error(of: statement)
        }
    }

    private static func bytesBind(
        _ bytes: [UInt8], type: enum_field_types, buffers: inout [UnsafeMutableRawPointer]
    ) -> MYSQL_BIND {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        buffers.append(buffer)
        var bind = MYSQL_BIND()
        bind.buffer_type = type
        bind.buffer = buffer
        bind.buffer_length = UInt(bytes.count)
        // length_value is used when the length pointer is NULL.
        bind.length_value = UInt(bytes.count)
        return bind
    }

    /// Buffers the whole result (`mysql_stmt_store_result` with max-length tracking) so each
    /// column can be bound to a buffer of exactly the size it needs.
    private func fetchAll(_ statement: UnsafeMutablePointer<MYSQL_STMT>) throws(DatabaseError) -> [Row] {
        defer { mysql_stmt_free_result(statement) }
        guard let metadata = mysql_stmt_result_metadata(statement) else { return [] }
        defer { mysql_free_result(metadata) }
        var updateMaxLength: my_bool = 1
        mysql_stmt_attr_set(statement, STMT_ATTR_UPDATE_MAX_LENGTH, &updateMaxLength)
        guard mysql_stmt_store_result(statement) == 0 else { throw Self.error(of: statement) }

        let count = Int(mysql_num_fields(metadata))
        let fields = mysql_fetch_fields(metadata)!
        var columns: [String: Int] = [:]
        let binds = UnsafeMutablePointer<MYSQL_BIND>.allocate(capacity: count)
        binds.initialize(repeating: MYSQL_BIND(), count: count)
        let lengths = UnsafeMutablePointer<UInt>.allocate(capacity: count)
        let nulls = UnsafeMutablePointer<my_bool>.allocate(capacity: count)
        var buffers: [UnsafeMutableRawPointer] = []
        defer {
            for buffer in buffers { buffer.deallocate() }
            binds.deallocate()
            lengths.deallocate()
            nulls.deallocate()
        }
        for index in 0..<count {
            columns[String(cString: fields[index].name)] = index
            let capacity = Int(fields[index].max_length) + 1
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
            buffers.append(buffer)
            binds[index].buffer_type = MYSQL_TYPE_STRING
            binds[index].buffer = buffer
            binds[index].buffer_length = UInt(capacity)
            binds[index].length = lengths + index
            binds[index].is_null = nulls + index
        }
        guard mysql_stmt_bind_result(statement, binds) == 0 else { throw Self.error(of: statement) }

        var rows: [Row] = []
        while true {
            let status = mysql_stmt_fetch(statement)
            if status == MYSQL_NO_DATA { break }
            // Buffers are sized from the result's max lengths, so truncation means a bug: fail.
            guard status == 0 else {
                if status == MYSQL_DATA_TRUNCATED { throw .server(code: 0, sqlState: "01004", message: "result truncated") }
                throw Self.error(of: statement)
            }
            var values: [[UInt8]?] = []
            values.reserveCapacity(count)
            for index in 0..<count {
                if nulls[index] != 0 {
                    values.append(nil)
                } else {
                    let length = min(Int(lengths[index]), Int(binds[index].buffer_length))
                    values.append(Array(UnsafeRawBufferPointer(start: buffers[index], count: length)))
                }
            }
            rows.append(Row(columns: columns, values: values))
        }
        return rows
    }
}
