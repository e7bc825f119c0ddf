"""The `tts` stage of the talking pipeline: real speech from espeak-ng, served through the Python
worker SDK (omnistage_worker). Each request's text (the LLM stage's output) becomes a WAV; a streamed
input (sentences, as the LLM writes them) is spoken sentence by sentence, one audio chunk each."""

import os
import shutil
import subprocess


def text_of(value):
    """The text to speak: a string, the upstream output's `text`, or the texts of several sources."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(text_of(v) for v in value)
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return value["text"]
    raise ValueError(f"the tts stage needs text, got {type(value).__name__}")


def fixed_wav(wav):
    """espeak-ng --stdout streams, so its RIFF and data sizes are placeholders: set the real ones."""
    data = wav.find(b"data", 12)
    if wav[:4] != b"RIFF" or data < 0:
        raise RuntimeError("espeak-ng did not write a WAV")
    out = bytearray(wav)
    out[4:8] = (len(wav) - 8).to_bytes(4, "little")
    out[data + 4:data + 8] = (len(wav) - data - 8).to_bytes(4, "little")
    return bytes(out)


class EspeakTTS:
    def setup(self, conn):
        self.conn = conn
        self.binary = shutil.which("espeak-ng")
        if self.binary is None:
            raise RuntimeError(
                "the tts stage needs the espeak-ng program, which is not on PATH "
                f"({os.environ.get('PATH', '')}): install the Debian package espeak-ng (apt-get install espeak-ng)"
            )
        self.voice = str(conn.engine_args.get("voice", "en"))
        self.speed = int(conn.engine_args.get("words_per_minute", 160))
        version = subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
        return {"engine": "espeak-ng", "version": version, "voice": self.voice}

    def handle(self, request, stream):
        if request.streamed:
            return self.speak_sentences(request, stream)
        text = text_of(request.input).strip()
        if not text:
            raise ValueError("nothing to say: the input text is empty")
        wav = self.speak(text, stream)
        if wav is None:
            return None
        ref = self.conn.put_payload(wav, mime="audio/wav")
        return {"kind": "audio", "mime": "audio/wav", "text": text, "voice": self.voice, **ref}

    def speak_sentences(self, request, stream):
        """Each sentence is spoken as it arrives and sent as an audio chunk (raw PCM); the last
        output is the whole answer as one WAV."""
        texts, header, pcm = [], None, []
        for sentence in request.inputs:
            text = text_of(sentence).strip()
            if not text:
                continue
            wav = self.speak(text, stream)
            if wav is None:
                return None
            data = wav.find(b"data", 12)
            header, part = wav[:data + 8], wav[data + 8:]
            texts.append(text)
            pcm.append(part)
            ref = self.conn.put_payload(part, mime="audio/pcm")
            stream.write({"kind": "audio_chunk", "text": text, "sample_rate": 22050, **ref})
            stream.drained()
        if header is None:
            raise ValueError("nothing to say: the input text is empty")
        ref = self.conn.put_payload(fixed_wav(header + b"".join(pcm)), mime="audio/wav")
        return {"kind": "audio", "mime": "audio/wav", "text": " ".join(texts), "voice": self.voice, **ref}

    def speak(self, text, stream):
        """The WAV espeak-ng makes of `text`, or None when the request was aborted meanwhile."""
        # The text goes on stdin, never on the command line (it could start with "-").
        proc = subprocess.Popen([self.binary, "--stdout", "-v", self.voice, "-s", str(self.speed)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        pending = text.encode("utf-8")
        while True:
            try:
                wav, err = proc.communicate(pending, timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                pending = None
                if stream.aborted:  # the request was aborted: stop speaking
                    proc.kill()
                    proc.communicate()
                    return None
        if proc.returncode != 0:
            raise RuntimeError(f"espeak-ng exited with {proc.returncode}: {err.decode(errors='replace').strip()}")
        return fixed_wav(wav)
