# syntax=docker/dockerfile:1
# Meridian: multi-stage build on Node 24 (the production target).

FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json LICENSE ./
# The admin dashboard's static files.
COPY assets ./assets
COPY config/docker.yaml /etc/meridian/meridian.yaml
COPY config/routes.yaml /etc/meridian/routes.yaml
# The last-good snapshot lives here; mount a volume to keep it across restarts.
RUN mkdir -p /var/lib/meridian && chown node:node /var/lib/meridian
USER node
# Proxy, admin, GeoDNS (UDP and TCP). The image runs as "node", which cannot bind
# below 1024: publish DNS as -p 53:5353/udp -p 53:5353/tcp (or run with
# --sysctl net.ipv4.ip_unprivileged_port_start=53 and listen on 53; --cap-add
# NET_BIND_SERVICE alone does not reach a non-root process).
EXPOSE 8080/tcp 9901/tcp 5353/udp 5353/tcp
# Readiness on the admin address the configuration names (a routing table in
# force and not shutting down). Mounting another meridian.yaml moves it along.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "/app/dist/cli.js", "ready", "--config", "/etc/meridian/meridian.yaml"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["start", "--config", "/etc/meridian/meridian.yaml"]
