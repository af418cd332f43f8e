// A TCP proxy in front of an agent, so a test can cut a client's connection (a network failure) while
// the agent keeps running: cut() drops every connection and refuses new ones until restore().
import net from "node:net";

export interface TcpProxy {
  /** "127.0.0.1:PORT" of the proxy. */
  address: string;
  cut(): void;
  restore(): void;
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
  const open = new Set<net.Socket>();
  let refusing = false;
  let accepted = 0;
  const server = net.createServer((client) => {
    if (refusing) return client.destroy();
    accepted++;
    const upstream = net.connect(port, host);
    open.add(client);
    open.add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    address,
    cut() {
      refusing = true;
      for (const s of open) s.destroy();
      open.clear();
    },
    restore() {
      refusing = false;
    },
    connections: () => accepted,
    close: () => {
      for (const s of open) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

