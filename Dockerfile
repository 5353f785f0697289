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
COPY config/docker.yaml /etc/meridian/meridian.yaml
COPY config/routes.yaml /etc/meridian/routes.yaml
# The last-good snapshot lives here; mount a volume to keep it across restarts.
RUN mkdir -p /var/lib/meridian && chown node:node /var/lib/meridian
USER node
EXPOSE 8080 9901
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9901/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["start", "--config", "/etc/meridian/meridian.yaml"]
