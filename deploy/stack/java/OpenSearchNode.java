import java.util.concurrent.CountDownLatch;

import org.codelibs.opensearch.runner.OpenSearchRunner;

/**
 * Runs one OpenSearch node of the local stack until the JVM is told to stop.
 *
 * <p>Started in source-file mode: {@code java -cp 'jars/*' OpenSearchNode.java BASE HTTP_PORT
 * TRANSPORT_PORT CLUSTER}. Binds to loopback only; there is no security plugin, so the node
 * must never listen anywhere else. SIGTERM closes the node cleanly through a shutdown hook.
 */
public final class OpenSearchNode {
    private OpenSearchNode() {}

    public static void main(final String[] args) throws Exception {
        if (args.length != 4) {
            System.err.println("usage: OpenSearchNode BASE_PATH HTTP_PORT TRANSPORT_PORT CLUSTER_NAME");
            System.exit(2);
        }
        final String basePath = args[0];
        final int httpPort = Integer.parseInt(args[1]);
        final int transportPort = Integer.parseInt(args[2]);
        final String clusterName = args[3];

        final OpenSearchRunner runner = new OpenSearchRunner();
        // No scan for a free port: the configured one is used, or start-up fails.
        runner.setMaxHttpPort(-1);
        final CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                if (!runner.isClosed()) {
                    runner.close();
                }
            } catch (final Exception e) {
                System.err.println("closing the OpenSearch node failed: " + e);
            } finally {
                closed.countDown();
            }
        }, "opensearch-node-shutdown"));

        // Settings given here win over the runner's defaults (it only fills absent keys).
        runner.onBuild((index, settings) -> {
            settings.put("http.port", String.valueOf(httpPort));
            settings.put("transport.port", String.valueOf(transportPort));
            settings.put("network.host", "127.0.0.1");
            settings.put("discovery.type", "single-node");
            settings.putList("node.roles", "cluster_manager", "data", "ingest");
            settings.put("cluster.routing.allocation.disk.threshold_enabled", false);
            // One node can hold no replica: without this every index stays yellow.
            settings.put("cluster.default_number_of_replicas", "0");
            settings.put("action.auto_create_index", "false");
        }).build(OpenSearchRunner.newConfigs()
                .basePath(basePath)
                .numOfNode(1)
                .baseHttpPort(httpPort - 1) // the runner gives node N the port base + N
                .clusterName(clusterName));
        runner.ensureYellow();
        System.out.println("OpenSearch node ready on http://127.0.0.1:" + httpPort);
        closed.await();
    }
}
