# Build: docker build --build-arg VERSION=$(git describe --tags) --build-arg REVISION=$(git rev-parse HEAD) -t smsbridge .
# .dockerignore keeps data/, *.db, build/ and .git out of the build context.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Pure Go (the SQLite driver too), so the binary is static.
ARG VERSION=dev
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath -o /out/smsbridge \
      -ldflags="-s -w -X github.com/prometheus/common/version.Version=${VERSION} -X github.com/prometheus/common/version.Revision=${REVISION}" .
# The outbox directory, owned by distroless's nonroot user (65532): a
# named volume mounted at /data starts as a copy of it, owner included,
# so the bridge can write there without running as root.
RUN mkdir -p /out/data && chown 65532:65532 /out/data && chmod 0700 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/smsbridge /bin/smsbridge
# Mount your configuration at /etc/smsbridge/smsbridge.yml (and the API
# key file it names); the example documents every key.
COPY config.example.yaml /etc/smsbridge/smsbridge.example.yml
# The outbox: mount a persistent volume here, or accepted pages are lost
# with the container.
COPY --from=build --chown=65532:65532 /out/data /data
VOLUME ["/data"]
WORKDIR /data
EXPOSE 9754
USER nonroot:nonroot
ENTRYPOINT ["/bin/smsbridge"]
CMD ["--config.file=/etc/smsbridge/smsbridge.yml", "--storage.path=/data"]
