public import CameoCore
public import CameoSystem
import Imaging
public import CameoMetrics
public import MediaStore

/// A worker's service, built once at start from the validated config and the store: the
/// router with its handlers, and the pipeline they share. Nothing here touches a C library
/// but through the wrapper modules.
public struct Service: Sendable {
    public let router: Router
    public let pipeline: UploadPipeline
    public let retrier: ScanRetrier
    /// Where upload bodies are received from the FastCGI stream.
    public let spool: IncomingSpool
    /// Tells requests that came through nginx from any other caller of the sockets.
    public let gate: FrontGate

    /// `scanner` replaces the configured one (tests); `hooks` are the pipeline's test seams;
    /// `metrics` hears every request, scan and final state.
    public init(
        config: Config, store: any MediaStore, clock: any TimeSource = SystemClock(), scanner: (any VirusScanner)? = nil,
        hooks: PipelineHooks = PipelineHooks(), metrics: any MetricsSink = NoMetrics()
    ) throws {
        let (configuredScanner, links) = configuredScanner(config, clock: clock)
        let scanner = scanner ?? configuredScanner
        let store = MeteredStore(store, metrics: metrics)
        let pipeline = UploadPipeline(config: config, store: store, clock: clock, scanner: scanner, hooks: hooks, metrics: metrics)
        self.pipeline = pipeline
        let root = pipeline.root
        let files = pipeline.files
        let layout = pipeline.layout
        let policy = pipeline.policy
        spool = IncomingSpool(root: root)
        gate = FrontGate(config.front)
        retrier = ScanRetrier(store: store, pipeline: pipeline, leaseSeconds: config.scanner.timeoutSeconds + 60, clock: clock)

        let authenticator = Authenticator(
            verifier: try JWTVerifier(settings: config.auth), allowedOrigins: config.auth.allowedOrigins, store: store, clock: clock)
        let admitter = UploadAdmitter(store: store, perMinute: config.rateLimits.uploadsPerMinute)
        let presigner = SigV4Presigner(settings: config.presign)
        let check = PresignedURLCheck(presigner: presigner, maxLifetime: config.presign.ttlSeconds, clock: clock)
        router = Router(
            presign: PresignHandler(
                authenticator: authenticator, admitter: admitter, presigner: presigner, policy: policy,
                ttlSeconds: config.presign.ttlSeconds, publicBaseURL: config.publicBaseURL, clock: clock),
            verifyUpload: VerifyUploadHandler(check: check, store: store),
            upload: UploadHandler(check: check, store: store, pipeline: pipeline),
            mediaStatus: MediaStatusHandler(authenticator: authenticator, store: store, layout: layout),
            profile: ProfileHandler(
                authenticator: authenticator, admitter: admitter, store: store, pipeline: pipeline, files: files, layout: layout, policy: policy,
                deletesPerMinute: config.rateLimits.deletesPerMinute, clock: clock),
            externalScanner: links.map {
                (ScanCallbackHandler(links: $0, store: store, pipeline: pipeline, clock: clock), QuarantineDownloadHandler(links: $0, store: store, root: root, maxBytes: config.limits.maxUploadBytes, clock: clock))
            },
            tus: TusHandler(
                authenticator: authenticator, admitter: admitter, store: store, pipeline: pipeline,
                partials: PartialUploads(root: root, store: store, clock: clock), policy: policy, lifetimeSeconds: config.tusLifetimeSeconds,
                partialUploadsPerUser: config.tusPartialUploadsPerUser, clock: clock),
            health: HealthHandler(store: store, root: root, scanner: scanner),
            clock: clock, maxUploadBytes: config.limits.maxUploadBytes, metrics: metrics)
    }
}

extension UploadPipeline {
    /// The pipeline of a configuration. `scanner` replaces the configured one (tests).
    public init(
        config: Config, store: any MediaStore, clock: any TimeSource = SystemClock(), scanner: (any VirusScanner)? = nil,
        hooks: PipelineHooks = PipelineHooks(), metrics: any MetricsSink = NoMetrics()
    ) {
        let root = MediaRoot(config.mediaRoot)
        self.init(
            store: store, root: root, files: AvatarFiles(root: root, store: store), layout: AvatarLayout(baseURL: config.cdnBaseURL),
            scanner: scanner ?? configuredScanner(config, clock: clock).0,
            renderer: AvatarRenderer(
                limits: ImageLimits(maxSide: config.limits.maxSide, maxPixels: config.limits.maxPixels), sizes: config.output.sizes,
                quality: Float(config.output.webpQuality)),
            policy: UploadPolicy(config), clock: clock, hooks: hooks, metrics: metrics)
    }
}
