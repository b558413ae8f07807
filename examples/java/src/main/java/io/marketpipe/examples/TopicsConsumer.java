package io.marketpipe.examples;

import io.apicurio.registry.serde.avro.AvroKafkaDeserializer;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import java.util.regex.Pattern;
import org.apache.avro.generic.GenericContainer;
import org.apache.avro.generic.GenericData;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RecordDeserializationException;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Reads marketpipe's topics with Apache Kafka's client and Apicurio Registry's Avro deserializer and prints
 * every record as one JSON line on stdout: {"topic", "partition", "offset", "key", "schema", "value"}.
 *
 * <p>marketpipe writes Confluent-framed Avro: byte 0 = 0, bytes 1-4 = the registry's schema id (big-endian),
 * then the Avro binary datum. Apicurio's deserializer reads that framing with its default 4-byte id handler
 * when the id is taken as a content id (Apicurio 3.x hands out content ids on its Confluent API), so no
 * Confluent jar is needed. Configuration: README.md next to this project.
 *
 * <p>Modes: by default every partition of the chosen topics is read from the beginning (or from
 * {@code --from-timestamp}) up to the end offsets seen at start, then the program exits (exit 0; a
 * summary JSON line goes to stderr). {@code --follow} subscribes with a consumer group instead and runs until
 * interrupted.
 */
public final class TopicsConsumer {

    static final Pattern MARKETPIPE_TOPICS = Pattern.compile("marketpipe\\..*");
    static final String CCOMPAT_SUFFIX = "/apis/ccompat/v7";

    private TopicsConsumer() {
    }

    public static void main(String[] args) throws IOException {
        Options opts = Options.parse(args);
        Properties props = consumerProperties(opts);
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        int rc;
        try (KafkaConsumer<String, Object> consumer = new KafkaConsumer<>(props)) {
            rc = opts.follow ? follow(consumer, opts, out) : readToEnd(consumer, opts, out);
            out.flush();
        }
        if (!opts.follow) { // --follow ends on a signal: the JVM is already shutting down (System.exit would block)
            System.exit(rc); // the registry client's threads would otherwise keep the JVM alive
        }
    }

    /** Kafka client + Apicurio deserializer settings: what a JVM user puts in their own consumer config. */
    static Properties consumerProperties(Options opts) throws IOException {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, required("MARKETPIPE_KAFKA_BOOTSTRAP"));
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName()); // "<venue>:<market>"
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, AvroKafkaDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, Boolean.toString(opts.follow));
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        if (opts.follow) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, opts.group);
        }
        // Apicurio Registry's Avro deserializer, reading Confluent framing:
        p.put("apicurio.registry.url", apicurioUrl());
        p.put("apicurio.registry.headers.enabled", "false"); // the schema id is in the payload, not in headers
        p.put("apicurio.registry.id-handler", "io.apicurio.registry.serde.Default4ByteIdHandler"); // 4-byte id
        p.put("apicurio.registry.use-id", "contentId"); // Apicurio 3.x: Confluent schema id == content id
        if (opts.configFile != null) { // security.protocol, sasl.*, ssl.*, apicurio.registry.auth.* ...
            try (InputStream in = Files.newInputStream(Path.of(opts.configFile))) {
                p.load(in);
            }
        }
        return p;
    }

    /** The registry's own (v3) API, derived from marketpipe's Confluent-API URL unless given explicitly. */
    static String apicurioUrl() {
        String explicit = System.getenv("MARKETPIPE_APICURIO_URL");
        if (explicit != null && !explicit.isBlank()) {
            return explicit;
        }
        String ccompat = required("MARKETPIPE_REGISTRY_URL");
        String base = ccompat.endsWith("/") ? ccompat.substring(0, ccompat.length() - 1) : ccompat;
        if (!base.endsWith(CCOMPAT_SUFFIX)) {
            throw new IllegalArgumentException("MARKETPIPE_REGISTRY_URL=" + ccompat + " does not end in " + CCOMPAT_SUFFIX
                    + ": set MARKETPIPE_APICURIO_URL to the registry's /apis/registry/v3 URL");
        }
        return base.substring(0, base.length() - CCOMPAT_SUFFIX.length()) + "/apis/registry/v3";
    }

    static int readToEnd(KafkaConsumer<String, Object> consumer, Options opts, PrintStream out) {
        List<TopicPartition> partitions = new ArrayList<>();
        TreeSet<String> topics = new TreeSet<>();
        for (Map.Entry<String, List<PartitionInfo>> e : consumer.listTopics(Duration.ofSeconds(30)).entrySet()) {
            if (opts.selects(e.getKey())) {
                topics.add(e.getKey());
                for (PartitionInfo pi : e.getValue()) {
                    partitions.add(new TopicPartition(pi.topic(), pi.partition()));
                }
            }
        }
        consumer.assign(partitions);
        Map<TopicPartition, Long> end = consumer.endOffsets(partitions, Duration.ofSeconds(30));
        if (opts.fromTimestampMs >= 0) {
            Map<TopicPartition, Long> query = new HashMap<>();
            partitions.forEach(tp -> query.put(tp, opts.fromTimestampMs));
            for (Map.Entry<TopicPartition, OffsetAndTimestamp> e : consumer.offsetsForTimes(query).entrySet()) {
                consumer.seek(e.getKey(), e.getValue() == null ? end.get(e.getKey()) : e.getValue().offset());
            }
        } else {
            consumer.seekToBeginning(partitions);
        }
        long decoded = 0;
        long undecodable = 0;
        long deadline = System.nanoTime() + Duration.ofSeconds(opts.timeoutSeconds).toNanos();
        while (!reachedEnd(consumer, end)) {
            if (System.nanoTime() > deadline) {
                System.err.println("timed out after " + opts.timeoutSeconds + "s before reaching the end offsets");
                summary(topics, decoded, undecodable, false);
                return 4;
            }
            try {
                for (ConsumerRecord<String, Object> r : consumer.poll(Duration.ofMillis(500))) {
                    print(out, r);
                    decoded++;
                }
            } catch (RecordDeserializationException e) { // counted, logged with its position, skipped
                undecodable++;
                System.err.println("undecodable record " + e.topicPartition() + "@" + e.offset() + ": " + rootMessage(e));
                consumer.seek(e.topicPartition(), e.offset() + 1);
            }
        }
        summary(topics, decoded, undecodable, true);
        return 0;
    }

    static boolean reachedEnd(KafkaConsumer<String, Object> consumer, Map<TopicPartition, Long> end) {
        for (Map.Entry<TopicPartition, Long> e : end.entrySet()) {
            if (consumer.position(e.getKey()) < e.getValue()) {
                return false;
            }
        }
        return true;
    }

    static int follow(KafkaConsumer<String, Object> consumer, Options opts, PrintStream out) {
        Thread main = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            consumer.wakeup();
            try {
                main.join(10_000);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
        }));
        if (opts.topics.isEmpty()) {
            consumer.subscribe(MARKETPIPE_TOPICS);
        } else {
            consumer.subscribe(opts.topics);
        }
        try {
            while (true) {
                try {
                    for (ConsumerRecord<String, Object> r : consumer.poll(Duration.ofSeconds(1))) {
                        print(out, r);
                    }
                    out.flush();
                } catch (RecordDeserializationException e) {
                    System.err.println("undecodable record " + e.topicPartition() + "@" + e.offset() + ": " + rootMessage(e));
                    consumer.seek(e.topicPartition(), e.offset() + 1);
                }
            }
        } catch (WakeupException stopping) {
            return 0;
        }
    }

    static void print(PrintStream out, ConsumerRecord<String, Object> r) {
        Object value = r.value();
        String schema = value instanceof GenericContainer c ? c.getSchema().getFullName() : null;
        // GenericData renders a record as JSON: strings quoted and escaped, unions as the bare branch value,
        // enums as their symbol, longs as integers. marketpipe's prices and sizes are Avro strings, so their
        // exact decimal text passes through untouched.
        out.println("{\"topic\": " + json(r.topic()) + ", \"partition\": " + r.partition() + ", \"offset\": " + r.offset()
                + ", \"key\": " + json(r.key()) + ", \"schema\": " + json(schema) + ", \"value\": "
                + GenericData.get().toString(value) + "}");
    }

    static void summary(TreeSet<String> topics, long decoded, long undecodable, boolean reachedEnd) {
        List<String> names = new ArrayList<>();
        topics.forEach(t -> names.add(json(t)));
        System.err.println("{\"summary\": {\"topics\": [" + String.join(", ", names) + "], \"decoded\": " + decoded
                + ", \"undecodable\": " + undecodable + ", \"reached_end\": " + reachedEnd + "}}");
    }

    static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null) {
            t = t.getCause();
        }
        return t.getClass().getSimpleName() + ": " + t.getMessage();
    }

    static String json(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            switch (ch) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (ch < 0x20) {
                        b.append(String.format("\\u%04x", (int) ch));
                    } else {
                        b.append(ch);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    static String required(String name) {
        String v = System.getenv(name);
        if (v == null || v.isBlank()) {
            throw new IllegalArgumentException(name + " is not set");
        }
        return v;
    }

    /** Command-line options. */
    static final class Options {
        List<String> topics = new ArrayList<>();
        boolean follow;
        String group = "marketpipe-java-consumer";
        long fromTimestampMs = -1;
        long timeoutSeconds = 120;
        String configFile;

        boolean selects(String topic) {
            return topics.isEmpty() ? MARKETPIPE_TOPICS.matcher(topic).matches() : topics.contains(topic);
        }

        static Options parse(String[] args) {
            Options o = new Options();
            for (int i = 0; i < args.length; i++) {
                switch (args[i]) {
                    case "--topics" -> o.topics = List.of(args[++i].split(","));
                    case "--follow" -> o.follow = true;
                    case "--group" -> o.group = args[++i];
                    case "--from-timestamp" -> o.fromTimestampMs = Long.parseLong(args[++i]);
                    case "--timeout" -> o.timeoutSeconds = Long.parseLong(args[++i]);
                    case "--config" -> o.configFile = args[++i];
                    default -> {
                        System.err.println("usage: java -jar marketpipe-java-consumer.jar [--topics a,b] [--from-timestamp ms]"
                                + " [--timeout s] [--config client.properties] [--follow [--group id]]");
                        System.exit(2);
                    }
                }
            }
            return o;
        }
    }
}
