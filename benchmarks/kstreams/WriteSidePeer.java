import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The Kafka Streams peer of the write-side benchmark: per command, decode the Avro command
 * (writer schema by id from the registry), read the aggregate from a persistent (RocksDB)
 * store, decide by the rules of aggregates/inventory.py, write the new state (the store's
 * changelog), and emit the event keyed by aggregate id and the CommandResult keyed by command
 * id, both Confluent-framed with the registry ids of their subjects; exactly_once_v2.
 *
 * <p>Arguments: bootstrap registry-url topic-prefix application-id state-dir commit-ms
 */
public final class WriteSidePeer {
  static final String STORE = "aggregates";
  static final String ADJUST = "cqrs.commands.AdjustStock";
  static final String REGISTER = "cqrs.commands.RegisterItem";
  static final String ADJUSTED = "cqrs.events.StockAdjusted";
  static final String REGISTERED = "cqrs.events.ItemRegistered";
  static final String RESULT = "cqrs.envelope.CommandResult";
  static final long MAX_UNITS = Integer.MAX_VALUE;
  static final UUID EVENT_ID_NAMESPACE = UUID.fromString("6b1f3a52-3c1e-4d8e-9a57-0c3e3c0f2b11");
  static final ObjectMapper JSON = new ObjectMapper();
  static final byte[] INITIAL =
      "{\"registered\":false,\"name\":\"\",\"on_hand\":0,\"reserved\":0,\"version\":0}"
          .getBytes(StandardCharsets.UTF_8);

  private WriteSidePeer() {}

  public static void main(String[] args) throws Exception {
    String bootstrap = args[0];
    String prefix = args[2];
    Registry registry = new Registry(args[1]);
    Codec codec = new Codec(registry, prefix + "events", prefix + "command-results");
    Properties config = new Properties();
    config.put(StreamsConfig.APPLICATION_ID_CONFIG, args[3]);
    config.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    config.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    config.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Integer.parseInt(args[5]));
    config.put(StreamsConfig.STATE_DIR_CONFIG, args[4]);
    config.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
    config.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    config.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");

    Topology topology = new Topology();
    topology.addSource(
        "commands",
        Serdes.String().deserializer(),
        Serdes.ByteArray().deserializer(),
        prefix + "commands");
    topology.addProcessor("decide", () -> new Decide(codec), "commands");
    topology.addStateStore(
        Stores.keyValueStoreBuilder(
            Stores.persistentKeyValueStore(STORE), Serdes.String(), Serdes.ByteArray()),
        "decide");
    topology.addSink(
        "events",
        prefix + "events",
        Serdes.String().serializer(),
        Serdes.ByteArray().serializer(),
        "decide");
    topology.addSink(
        "results",
        prefix + "command-results",
        Serdes.String().serializer(),
        Serdes.ByteArray().serializer(),
        "decide");

    KafkaStreams streams = new KafkaStreams(topology, config);
    CountDownLatch stopped = new CountDownLatch(1);
    streams.setUncaughtExceptionHandler(
        error -> {
          error.printStackTrace();
          stopped.countDown();
          return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
    streams.setStateListener(
        (now, before) -> {
          System.out.println("kstreams peer state " + now);
          System.out.flush();
          if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
            stopped.countDown();
          }
        });
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  streams.close(Duration.ofSeconds(30));
                  stopped.countDown();
                }));
    streams.start();
    stopped.await();
    streams.close(Duration.ofSeconds(30));
    System.exit(streams.state() == KafkaStreams.State.ERROR ? 1 : 0);
  }

  /** Decode, read the store, decide, write the store, forward the event and the result. */
  static final class Decide implements Processor<String, byte[], String, byte[]> {
    private final Codec codec;
    private ProcessorContext<String, byte[]> context;
    private KeyValueStore<String, byte[]> store;

    Decide(Codec codec) {
      this.codec = codec;
    }

    @Override
    public void init(ProcessorContext<String, byte[]> context) {
      this.context = context;
      this.store = context.getStateStore(STORE);
    }

    @Override
    public void process(Record<String, byte[]> record) {
      GenericRecord command = codec.decode(record.value());
      GenericRecord metadata = (GenericRecord) command.get("metadata");
      String commandId = metadata.get("command_id").toString();
      String aggregateId = metadata.get("aggregate_id").toString();
      byte[] stored = store.get(record.key());
      ObjectNode state = stored == null ? initial() : read(stored);
      long version = state.get("version").asLong();
      String name = command.getSchema().getFullName();
      String[] rejection = reject(state, name, command, metadata.get("expected_version"));
      if (rejection != null) {
        byte[] result = codec.result(commandId, name, aggregateId, null, null, rejection, version);
        context.forward(record.withKey(commandId).withValue(result), "results");
        return;
      }
      long next = version + 1;
      String eventId = uuid5(EVENT_ID_NAMESPACE, commandId + "/0").toString();
      GenericRecord event;
      if (ADJUST.equals(name)) {
        int delta = (Integer) command.get("delta");
        state.put("on_hand", state.get("on_hand").asLong() + delta);
        event = codec.event(ADJUSTED);
        event.put("delta", delta);
        event.put("reason", command.get("reason"));
        event.put("note", command.get("note"));
      } else {
        state.put("registered", true);
        state.put("name", command.get("name").toString());
        event = codec.event(REGISTERED);
        event.put("name", command.get("name"));
      }
      state.put("version", next);
      event.put("metadata", codec.eventMetadata(event, metadata, eventId, next));
      store.put(record.key(), write(state));
      byte[] encoded = codec.encode(event);
      context.forward(record.withKey(aggregateId).withValue(encoded), "events");
      byte[] result = codec.result(commandId, name, aggregateId, next, eventId, null, next);
      context.forward(record.withKey(commandId).withValue(result), "results");
    }

    /** The rules of aggregates/inventory.py for RegisterItem and AdjustStock: code, reason. */
    private static String[] reject(
        ObjectNode state, String name, GenericRecord command, Object expectedVersion) {
      long version = state.get("version").asLong();
      if (expectedVersion != null && (Long) expectedVersion != version) {
        return new String[] {"VERSION_CONFLICT", "expected version " + expectedVersion};
      }
      boolean registered = state.get("registered").asBoolean();
      if (REGISTER.equals(name)) {
        return registered
            ? new String[] {"ITEM_ALREADY_REGISTERED", "this SKU is already registered"}
            : null;
      }
      if (!ADJUST.equals(name)) {
        return new String[] {"UNKNOWN_COMMAND_TYPE", name + " is not handled here"};
      }
      if (!registered) {
        return new String[] {"ITEM_NOT_REGISTERED", "no item with this SKU is registered"};
      }
      int delta = (Integer) command.get("delta");
      long onHand = state.get("on_hand").asLong();
      long available = onHand - state.get("reserved").asLong();
      if (delta == 0) {
        return new String[] {"ZERO_ADJUSTMENT", "a stock adjustment must change the stock"};
      }
      if ("RESTOCK".equals(command.get("reason").toString()) && delta < 0) {
        return new String[] {"NEGATIVE_RESTOCK", "a restock adds units; use CORRECTION"};
      }
      if (available + delta < 0) {
        return new String[] {"STOCK_BELOW_RESERVED", "removing units would leave too few"};
      }
      if (onHand + delta > MAX_UNITS) {
        return new String[] {"STOCK_LIMIT_EXCEEDED", "stock on hand would exceed the limit"};
      }
      return null;
    }

    private static ObjectNode initial() {
      return read(INITIAL);
    }

    private static ObjectNode read(byte[] stored) {
      try {
        return (ObjectNode) JSON.readTree(stored);
      } catch (IOException error) {
        throw new UncheckedIOException(error);
      }
    }

    private static byte[] write(JsonNode state) {
      try {
        return JSON.writeValueAsBytes(state);
      } catch (IOException error) {
        throw new UncheckedIOException(error);
      }
    }
  }

  /** Confluent-framed Avro: writer schemas by id, output schemas and ids by subject. */
  static final class Codec {
    private final Registry registry;
    private final Map<Integer, GenericDatumReader<GenericRecord>> readers = new HashMap<>();
    private final Map<String, Schema> schemas = new HashMap<>();
    private final Map<String, byte[]> headers = new HashMap<>();
    private final Map<String, GenericDatumWriter<GenericRecord>> writers = new HashMap<>();
    private BinaryDecoder decoder;
    private BinaryEncoder encoder;

    Codec(Registry registry, String eventsTopic, String resultsTopic) {
      this.registry = registry;
      for (String[] output :
          new String[][] {
            {eventsTopic, ADJUSTED}, {eventsTopic, REGISTERED}, {resultsTopic, RESULT}
          }) {
        String subject = output[0] + "-" + output[1];
        JsonNode latest = registry.get("/subjects/" + subject + "/versions/latest");
        Schema schema = new Schema.Parser().parse(latest.get("schema").asText());
        int id = latest.get("id").asInt();
        schemas.put(output[1], schema);
        headers.put(output[1], ByteBuffer.allocate(5).put((byte) 0).putInt(id).array());
        writers.put(output[1], new GenericDatumWriter<>(schema));
      }
    }

    GenericRecord decode(byte[] value) {
      int id = ByteBuffer.wrap(value, 1, 4).getInt();
      GenericDatumReader<GenericRecord> reader = readers.computeIfAbsent(id, this::reader);
      decoder = DecoderFactory.get().binaryDecoder(value, 5, value.length - 5, decoder);
      try {
        return reader.read(null, decoder);
      } catch (IOException error) {
        throw new UncheckedIOException(error);
      }
    }

    private GenericDatumReader<GenericRecord> reader(int id) {
      String text = registry.get("/schemas/ids/" + id).get("schema").asText();
      return new GenericDatumReader<>(new Schema.Parser().parse(text));
    }

    GenericRecord event(String name) {
      return new GenericData.Record(schemas.get(name));
    }

    GenericRecord eventMetadata(
        GenericRecord event, GenericRecord command, String eventId, long sequence) {
      Schema schema = event.getSchema().getField("metadata").schema();
      GenericRecord metadata = new GenericData.Record(schema);
      String commandId = command.get("command_id").toString();
      Object correlation = command.get("correlation_id");
      metadata.put("event_id", eventId);
      metadata.put("aggregate_type", "InventoryItem");
      metadata.put("aggregate_id", command.get("aggregate_id").toString());
      metadata.put("sequence", sequence);
      metadata.put("command_id", commandId);
      metadata.put("correlation_id", correlation == null ? commandId : correlation.toString());
      metadata.put("causation_id", commandId);
      metadata.put("occurred_at", command.get("issued_at"));
      metadata.put("recorded_at", System.currentTimeMillis());
      return metadata;
    }

    byte[] result(
        String commandId,
        String commandType,
        String aggregateId,
        Long version,
        String eventId,
        String[] rejection,
        long currentVersion) {
      Schema schema = schemas.get(RESULT);
      GenericRecord result = new GenericData.Record(schema);
      result.put("command_id", commandId);
      result.put("command_type", commandType);
      result.put("aggregate_id", aggregateId);
      Schema status = schema.getField("status").schema();
      String verdict = rejection == null ? "ACCEPTED" : "REJECTED";
      result.put("status", new GenericData.EnumSymbol(status, verdict));
      result.put("version", version);
      result.put("event_ids", eventId == null ? List.of() : List.of(eventId));
      if (rejection != null) {
        Schema rejectionSchema = schema.getField("rejection").schema().getTypes().get(1);
        GenericRecord why = new GenericData.Record(rejectionSchema);
        why.put("code", rejection[0]);
        why.put("reason", rejection[1]);
        why.put("current_version", currentVersion);
        result.put("rejection", why);
      }
      result.put("processed_at", System.currentTimeMillis());
      return encode(result);
    }

    byte[] encode(GenericRecord record) {
      String name = record.getSchema().getFullName();
      ByteArrayOutputStream out = new ByteArrayOutputStream(256);
      out.writeBytes(headers.get(name));
      encoder = EncoderFactory.get().binaryEncoder(out, encoder);
      try {
        writers.get(name).write(record, encoder);
        encoder.flush();
      } catch (IOException error) {
        throw new UncheckedIOException(error);
      }
      return out.toByteArray();
    }
  }

  /** The few schema-registry reads the peer needs (the Confluent REST API). */
  static final class Registry {
    private final String url;
    private final HttpClient http = HttpClient.newHttpClient();

    Registry(String url) {
      this.url = url.replaceAll("/+$", "");
    }

    JsonNode get(String path) {
      HttpRequest request =
          HttpRequest.newBuilder(URI.create(url + path)).timeout(Duration.ofSeconds(10)).build();
      try {
        HttpResponse<String> response = http.send(request, HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() != 200) {
          throw new IllegalStateException(
              path + ": HTTP " + response.statusCode() + " " + response.body());
        }
        return JSON.readTree(response.body());
      } catch (IOException error) {
        throw new UncheckedIOException(error);
      } catch (InterruptedException error) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(error);
      }
    }
  }

  /** A name-based (SHA-1) UUID, as Python's uuid.uuid5: the worker's event ids. */
  static UUID uuid5(UUID namespace, String name) {
    MessageDigest sha1;
    try {
      sha1 = MessageDigest.getInstance("SHA-1");
    } catch (NoSuchAlgorithmException error) {
      throw new IllegalStateException(error);
    }
    ByteBuffer space = ByteBuffer.allocate(16);
    space.putLong(namespace.getMostSignificantBits()).putLong(namespace.getLeastSignificantBits());
    sha1.update(space.array());
    byte[] hash = sha1.digest(name.getBytes(StandardCharsets.UTF_8));
    hash[6] = (byte) ((hash[6] & 0x0f) | 0x50);
    hash[8] = (byte) ((hash[8] & 0x3f) | 0x80);
    ByteBuffer bits = ByteBuffer.wrap(hash, 0, 16);
    return new UUID(bits.getLong(), bits.getLong());
  }
}
