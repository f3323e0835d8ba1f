package workbook.rules;

import org.apache.flink.table.functions.ScalarFunction;

/** `malformed_reason(value BYTES) -> STRING` for Flink SQL: the contract's rule on the JVM (EventRule). */
public final class MalformedReason extends ScalarFunction {
  public String eval(byte[] value) {
    return EventRule.malformedReason(value);
  }
}
