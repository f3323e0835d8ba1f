package workbook.rules;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

/**
 * The rule over stdin, for the differential test against Python's: one record a line (its bytes in
 * base64, or "-" for a null value), one answer a line: the reason and the text, each in base64 or "-".
 * Each answer is flushed, so a test can ask one record at a time.
 */
public final class Probe {
  private Probe() {}

  public static void main(String[] args) throws IOException {
    Base64.Decoder decoder = Base64.getDecoder();
    Base64.Encoder encoder = Base64.getEncoder();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
    BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.US_ASCII));
    for (String line = in.readLine(); line != null; line = in.readLine()) {
      byte[] value = line.equals("-") ? null : decoder.decode(line.trim());
      String reason = EventRule.malformedReason(value);
      String text = EventRule.asText(value);
      out.write(reason == null ? "-" : encoder.encodeToString(reason.getBytes(StandardCharsets.UTF_8)));
      out.write('\t');
      out.write(text == null ? "-" : encoder.encodeToString(text.getBytes(StandardCharsets.UTF_8)));
      out.write('\n');
      if (!in.ready()) {
        out.flush();
      }
    }
    out.flush();
  }
}
