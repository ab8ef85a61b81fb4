# Build: docker build -t smsbridge .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Pure Go (the SQLite driver too), so the binary is static.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/smsbridge .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/smsbridge /bin/smsbridge
COPY config.example.yaml /etc/smsbridge/smsbridge.yml
# The outbox: mount a persistent volume here, or accepted pages are lost
# with the container.
VOLUME ["/data"]
WORKDIR /data
EXPOSE 9754
USER nonroot:nonroot
ENTRYPOINT ["/bin/smsbridge"]
CMD ["--config.file=/etc/smsbridge/smsbridge.yml", "--storage.path=/data"]
