// Applies deploy/local/kafka/acls.txt to a running broker in one Admin request.
//
// Run by deploy/local/infra.sh (HITL_KAFKA_SECURITY=sasl_ssl) with Java's single-file
// source launcher:  java -cp 'lib/*' ApplyAcls.java ADMIN_PROPERTIES ACLS_TXT [PREFIX]
// One JVM for every binding: kafka-acls.sh would start one JVM per principal/operation.
// PREFIX is put before every topic and group name (HITL_TOPIC_PREFIX of the services).
// Existing bindings are kept (create is idempotent); nothing is deleted.

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class ApplyAcls {
  public static void main(String[] args) throws Exception {
    if (args.length < 2) {
      System.err.println("usage: ApplyAcls ADMIN_PROPERTIES ACLS_TXT [PREFIX]");
      System.exit(2);
    }
    Properties props = new Properties();
    try (var in = Files.newInputStream(Path.of(args[0]))) {
      props.load(in);
    }
    String prefix = args.length > 2 ? args[2] : "";
    List<AclBinding> bindings = new ArrayList<>();
    int lineNo = 0;
    for (String raw : Files.readAllLines(Path.of(args[1]))) {
      lineNo++;
      String line = raw.replaceFirst("#.*", "").trim();
      if (line.isEmpty()) continue;
      String[] f = line.split("\\s+");
      if (f.length < 4 || f.length > 5) {
        throw new IllegalArgumentException(args[1] + ":" + lineNo + ": want PRINCIPALS OPERATIONS TYPE NAME [literal|prefixed]");
      }
      ResourceType type = ResourceType.fromString(f[2].toUpperCase(Locale.ROOT));
      if (type != ResourceType.TOPIC && type != ResourceType.GROUP && type != ResourceType.CLUSTER) {
        throw new IllegalArgumentException(args[1] + ":" + lineNo + ": unknown resource type " + f[2]);
      }
      PatternType pattern = f.length == 5 ? PatternType.fromString(f[4].toUpperCase(Locale.ROOT)) : PatternType.LITERAL;
      if (pattern != PatternType.LITERAL && pattern != PatternType.PREFIXED) {
        throw new IllegalArgumentException(args[1] + ":" + lineNo + ": pattern must be literal or prefixed");
      }
      String name = type == ResourceType.CLUSTER ? "kafka-cluster" : prefix + f[3];
      for (String principal : f[0].split(",")) {
        for (String op : f[1].split(",")) {
          AclOperation operation = AclOperation.fromString(op.toUpperCase(Locale.ROOT));
          if (operation == AclOperation.UNKNOWN) {
            throw new IllegalArgumentException(args[1] + ":" + lineNo + ": unknown operation " + op);
          }
          bindings.add(new AclBinding(
              new ResourcePattern(type, name, pattern),
              new AccessControlEntry("User:" + principal, "*", operation, AclPermissionType.ALLOW)));
        }
      }
    }
    try (Admin admin = Admin.create(props)) {
      admin.createAcls(bindings).all().get(60, TimeUnit.SECONDS);
    }
    System.err.println("[infra] " + bindings.size() + " ACL bindings applied from " + args[1]);
  }
}
