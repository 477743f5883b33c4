from cortex_neuron.text_stream import StopScanner, TextAssembler


def feed_all(assembler: TextAssembler, pieces: list[bytes]) -> tuple[str, bool]:
    out = []
    for piece in pieces:
        text, stopped = assembler.feed(piece)
        out.append(text)
        if stopped:
            return "".join(out), True
    out.append(assembler.finish())
    return "".join(out), False


def test_multibyte_character_split_across_tokens_is_never_emitted_broken() -> None:
    snowman = "☃".encode()  # three bytes
    assembler = TextAssembler([])
    first, _ = assembler.feed(b"a" + snowman[:1])
    second, _ = assembler.feed(snowman[1:2])
    third, _ = assembler.feed(snowman[2:] + b"b")
    assert (first, second, third) == ("a", "", "☃b")


def test_unfinished_character_at_the_end_becomes_replacement() -> None:
    assembler = TextAssembler([])
    assert assembler.feed("é".encode()[:1]) == ("", False)
    assert assembler.finish() == "\ufffd"


def test_stop_sequence_split_across_pieces_is_held_back_and_cut() -> None:
    text, stopped = feed_all(TextAssembler(["END"]), [b"Hello E", b"N", b"D and more"])
    assert (text, stopped) == ("Hello ", True)


def test_partial_stop_that_does_not_complete_is_released() -> None:
    scanner = StopScanner(["END"])
    assert scanner.feed("Hi EN") == ("Hi ", False)
    assert scanner.feed("ough") == ("ENough", False)
    assert scanner.flush() == ""


def test_held_text_is_flushed_at_the_end() -> None:
    text, stopped = feed_all(TextAssembler(["</s>"]), [b"abc</"])
    assert (text, stopped) == ("abc</", False)


def test_earliest_of_several_stops_wins() -> None:
    scanner = StopScanner(["world", "lo"])
    assert scanner.feed("hello world") == ("hel", True)
