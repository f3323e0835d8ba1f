package workbook.catalog;

import java.lang.reflect.Constructor;
import java.lang.reflect.Method;
import java.util.Map;
import org.apache.iceberg.rest.RESTCatalogAdapter;
import org.apache.iceberg.rest.RESTCatalogServer;
import org.apache.iceberg.rest.RESTCatalogServlet;
import org.eclipse.jetty.compression.gzip.GzipCompression;
import org.eclipse.jetty.compression.server.CompressionHandler;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

/**
 * Iceberg's RESTCatalogServer, bound to one host instead of every interface.
 *
 * <p>The backend catalog is built by the stock server's own code, so every CATALOG_* environment
 * variable means what it means there (CATALOG_URI, CATALOG_WAREHOUSE, CATALOG_REST_PORT, ...).
 * Added: CATALOG_REST_HOST (default 127.0.0.1). Unlike the stock server, the port is not opened
 * with SO_REUSEPORT, so a second copy fails to bind instead of silently sharing the port.
 */
public final class LoopbackCatalogServer {
  private LoopbackCatalogServer() {}

  @SuppressWarnings("unchecked")
  public static void main(String[] args) throws Exception {
    Constructor<RESTCatalogServer> serverCtor = RESTCatalogServer.class.getDeclaredConstructor();
    serverCtor.setAccessible(true);
    Method init = RESTCatalogServer.class.getDeclaredMethod("initializeBackendCatalog");
    init.setAccessible(true);
    Object context = init.invoke(serverCtor.newInstance());
    Method configuration = context.getClass().getDeclaredMethod("configuration");
    configuration.setAccessible(true);
    Map<String, String> conf = (Map<String, String>) configuration.invoke(context);

    Constructor<?> adapterCtor =
        Class.forName("org.apache.iceberg.rest.RESTServerCatalogAdapter").getDeclaredConstructor(context.getClass());
    adapterCtor.setAccessible(true);
    RESTCatalogAdapter adapter = (RESTCatalogAdapter) adapterCtor.newInstance(context);

    ServletContextHandler handler = new ServletContextHandler(ServletContextHandler.NO_SESSIONS);
    handler.addServlet(new ServletHolder(new RESTCatalogServlet(adapter)), "/*");
    CompressionHandler gzip = new CompressionHandler();
    gzip.putCompression(new GzipCompression());
    handler.insertHandler(gzip);

    Server server = new Server();
    ServerConnector connector = new ServerConnector(server);
    connector.setHost(conf.getOrDefault("rest.host", "127.0.0.1"));
    connector.setPort(Integer.parseInt(conf.getOrDefault("rest.port", "8181")));
    server.addConnector(connector);
    server.setHandler(handler);
    server.start();
    server.join();
  }
}
