package workbook.rules;

import org.apache.flink.table.functions.ScalarFunction;

/** `as_text(value BYTES) -> STRING` for Flink SQL: a record as UTF-8 text with U+FFFD where it is not. */
public final class AsText extends ScalarFunction {
  public String eval(byte[] value) {
    return EventRule.asText(value);
  }
}
