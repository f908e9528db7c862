"""Our recognizer packs: (text, value, type) tables with negative rows, and the YAML loader."""

from pathlib import Path

import pytest
from presidio_analyzer import AnalyzerEngine

from pipelines.steps.config import PIIConfig
from pipelines.steps.privacy.pii import PIIEngineError, build_analyzer, scan_text
from pipelines.steps.privacy.recognizers import RecognizerConfigError, load_recognizers

CFG = PIIConfig()


@pytest.fixture(scope="module")
def analyzer() -> AnalyzerEngine:
    return build_analyzer(CFG)


@pytest.mark.parametrize(
    ("language", "text", "value", "entity_type"),
    [
        ("en", "Hi, this is jane smith from sales.", "jane smith", "PERSON"),
        ("en", "Dr. Okafor will call.", "Okafor", "PERSON"),
        ("en", "Ship to 12 Elm Street Apt 4\nSpringfield, IL 62704 today", None, "LOCATION"),
        ("en", "Call +44 20 7946 0958 ext. 12 now", "+44 20 7946 0958 ext. 12", "PHONE_NUMBER"),
        ("en", "I was born on March 3, 1981.", "March 3, 1981", "DATE_OF_BIRTH"),
        ("en", "The patient is 54 years old.", "54", "AGE"),
        ("en", "Routing number 021000021 for payroll.", "021000021", "ABA_ROUTING_NUMBER"),
        ("en", "Device 00:1a:2b:3c:4d:5e joined.", "00:1a:2b:3c:4d:5e", "MAC_ADDRESS"),
        ("en", "key AKIAIOSFODNN7EXAMPLE leaked", "AKIAIOSFODNN7EXAMPLE", "SECRET"),
        ("en", "mail john at example dot com", "john at example dot com", "EMAIL_ADDRESS"),
        ("zh", "我的身份证号是11010519491231002X。", "11010519491231002X", "CN_ID_CARD"),
        ("zh", "有问题请打我手机138 0013 8000。", "138 0013 8000", "CN_PHONE_NUMBER"),
        # a landline's local number grouped, its area code in brackets, an extension
        ("zh", "电话：(010)6234-5678转801", "(010)6234-5678转801", "CN_PHONE_NUMBER"),
        # numbers read out in digit words (a call's transcript)
        (
            "en",
            "my number is nine one seven, five five five, zero one four two",
            "nine one seven, five five five, zero one four two",
            "PHONE_NUMBER",
        ),
        ("en", "call me at 917 five five five 0142 ok", "917 five five five 0142", "PHONE_NUMBER"),
        (
            "en",
            "my SSN is five three six, two two, eight one four five",
            "five three six, two two, eight one four five",
            "US_SSN",
        ),
        ("en", "account four four double seven two nine one three", None, "ID_NUMBER"),
        # a British mobile read out: "oh" and "double oh" are zeros, first in the run too
        (
            "en",
            "call me on oh seven seven zero zero, nine double oh, three one two",
            "oh seven seven zero zero, nine double oh, three one two",
            "PHONE_NUMBER",
        ),
        ("zh", "他的手机号是一三九一二三四五六七八", "一三九一二三四五六七八", "CN_PHONE_NUMBER"),
        # any number read out in Chinese numerals is read as its digits (normalization)
        (
            "zh",
            "身份证号码是一一零一零五一九四九一二三一零零二X。",
            "一一零一零五一九四九一二三一零零二X",
            "CN_ID_CARD",
        ),
        (
            "zh",
            "工资卡卡号陆贰贰贰零贰零贰零零壹壹贰叁肆伍陆柒玖，",
            "陆贰贰贰零贰零贰零零壹壹贰叁肆伍陆柒玖",
            "CN_BANK_CARD",
        ),
        # Taiwan's and Hong Kong's numbers by a phone word, and an identifier's traditional name
        ("zh", "客戶陳大文致電查詢帳戶，電話：0912-345-678", "0912-345-678", "PHONE_NUMBER"),
        ("zh", "如有疑問請致電2888 8888。", "2888 8888", "PHONE_NUMBER"),  # no space before it
        ("zh", "请联系她，她的微信是sarah_88", "sarah_88", "WECHAT_ID"),  # glued to its label
        ("zh", "客户来电，邮箱john@smith.io", "john@smith.io", "EMAIL_ADDRESS"),  # not 邮箱
        ("zh", "服务器IP地址10.12.0.7，端口22", "10.12.0.7", "IP_ADDRESS"),  # ASCII word edges
        ("zh", "MAC地址00:1A:2B:3C:4D:5E", "00:1A:2B:3C:4D:5E", "MAC_ADDRESS"),
        ("zh", "手機：+852 9123 4567", "+852 9123 4567", "PHONE_NUMBER"),
        ("zh", "身分證字號：A123456789", "A123456789", "ID_NUMBER"),
        # an identifier's name with no 号 after it, an account's kind, a code to collect medicine
        ("zh", "勞保資料：身分證F123456784，月投保薪資", "F123456784", "ID_NUMBER"),
        ("zh", "电子处方RX202405120001234已流转至药房", "RX202405120001234", "ID_NUMBER"),
        ("zh", "处警民警：覃海（警号045123）", "045123", "ID_NUMBER"),
        ("zh", "电费催缴：用电户号3100123456789，欠费", "3100123456789", "ID_NUMBER"),
        ("zh", "病理报告 病理号：P2024-03817 送检材料", "P2024-03817", "ID_NUMBER"),
        ("zh", "我的賬戶號碼係8123 4567 8901", "8123 4567 8901", "ID_NUMBER"),
        ("zh", "取药人冼丽珍，取药码705213。", "705213", "SECRET"),
        # a plate LAC half reads as a person (鲁B), a virtual number's extension, a call in
        # Taiwan's and Hong Kong's speech, a phone read inside an identifier's value
        ("zh", "当事人焦阳驾驶鲁B·F8866号小型轿车", "鲁B·F8866", "CN_LICENSE_PLATE"),
        ("zh", "收货人：杨 电话：17700005621转3847", "17700005621转3847", "CN_PHONE_NUMBER"),
        ("zh", "小綠：有空打給我0933-123-456", "0933-123-456", "PHONE_NUMBER"),
        ("zh", "打俾我9876 5432啦", "9876 5432", "PHONE_NUMBER"),
        ("zh", "旅客有效身份证件号码E98765432 航班", "E98765432", "ID_NUMBER"),
        ("zh", "会员卡号VIP88012345，积分", "VIP88012345", "ID_NUMBER"),
        # a Latin given name and the Chinese surname after it
        ("zh", "HRBP：Cindy 刘。", "Cindy 刘", "PERSON"),
        ("en", "Onboarding email: Welcome Priyanka! Your username is", "Priyanka", "PERSON"),
        ("zh", "旅客Peter 黄（黄柏翰），台湾居民", "Peter 黄", "PERSON"),
        # a name written surname first with a slash (a ticket, a payment log), in either pack
        ("zh", "旅客姓名ZHANG/XIAOHUI 有效身份证件号码", "ZHANG/XIAOHUI", "PERSON"),
        ("zh", "尊敬的YANG/LI女士，您已成功办理值机。", "YANG/LI", "PERSON"),
        ("en", "cardNo=**** holder=REN/JIAHUI errCode=E1023", "REN/JIAHUI", "PERSON"),
        ("en", "PAX: 14C MURPHY/SEAN MR; 15A NGUYEN/THI HUONG MS", "MURPHY/SEAN", "PERSON"),
        ("en", "PAX: NGUYEN/THI HUONG MS, seat 15A", "NGUYEN/THI HUONG", "PERSON"),
        # an account's name after its key, or in an SSH login's log line, in either pack
        ("en", "Welcome! Your username is pnair03 and your password", "pnair03", "USER_HANDLE"),
        ("en", "WARN: login refused for user 'jdoe_88' from", "jdoe_88", "USER_HANDLE"),
        (
            "en",
            "[sshd] Accepted publickey for rkapoor from 10.0.0.5 port 51422",
            "rkapoor",
            "USER_HANDLE",
        ),
        (
            "zh",
            "INFO login success userId=10086 username=zhangxiaofan88",
            "zhangxiaofan88",
            "USER_HANDLE",
        ),
        ("zh", "小綠：我Line ID是green_0823，有空打給我", "green_0823", "USER_HANDLE"),
        # an IPv6 address's last group before "port" is no house's number
        (
            "en",
            "Accepted publickey from 2001:db8:85a3::8a2e:370:7334 port 51422",
            "2001:db8:85a3::8a2e:370:7334",
            "IP_ADDRESS",
        ),
        # other countries' identifiers by their acronyms, a number in threes, a JSON key in
        # lower case, keys of organisations' records, a British registration after its key
        ("en", "New starter: TFN 123 456 782, start Monday", "123 456 782", "ID_NUMBER"),
        ("en", "Canadian payroll: SIN 046 454 286, address", "046 454 286", "ID_NUMBER"),
        ("en", '{"name": "x", "ssn": "078-05-1120"}', "078-05-1120", "ID_NUMBER"),
        ("en", "Payroll: NINO: JG103759A.", "JG103759A", "ID_NUMBER"),
        ("en", "PPS 1234567FA and NI number QQ123456C", "1234567FA", "ID_NUMBER"),
        # capitals standing apart before the digits, one character apart after them
        ("en", "NI number QQ 12 34 56 C, name Declan Murphy", "QQ 12 34 56 C", "ID_NUMBER"),
        ("en", "Ms Raghavan, hospital number RXH 449 201 7", "RXH 449 201 7", "ID_NUMBER"),
        ("en", "my member ID is MBR 6640-2291-07 and a claim", "MBR 6640-2291-07", "ID_NUMBER"),
        ("en", "Review: Emp# HR-0093312; Reviewer: Marta", "HR-0093312", "ID_NUMBER"),
        ("en", "Allergy alert for (hospital no. RX0447712): penicillin", "RX0447712", "ID_NUMBER"),
        ("en", "e-ticket 176-2345678901, frequent flyer BA12345678", "BA12345678", "ID_NUMBER"),
        ("en", "super fund member no 1009 8876 554.", "1009 8876 554", "ID_NUMBER"),
        ("en", "Third party driver, reg KD19 XRT, insurer", "KD19 XRT", "ID_NUMBER"),
        ("en", "Transit number 00012-003 and account", "00012-003", "ID_NUMBER"),
        ("en", "hey, the lockbox code is 7719 and the wifi", "7719", "SECRET"),
        ("en", "password: sunshine", "sunshine", "SECRET"),  # a weak password is one
        # a British number given in a message, an Irish Eircode alone
        ("en", "contact Morag Campbell on 0141 496 0785.", "0141 496 0785", "PHONE_NUMBER"),
        (
            "en",
            "hey its tunde lol new number 07412 883 190 save it",
            "07412 883 190",
            "PHONE_NUMBER",
        ),
        (
            "en",
            "to reside at 9 Shandon Street, Cork T23 Y8X1 and report",
            "9 Shandon Street, Cork T23 Y8X1",
            "LOCATION",
        ),
        ("en", "Eircode D04 X2K7", "D04 X2K7", "LOCATION"),
        ("zh", "身份证号码：440301199003071234", "440301199003071234", "CN_ID_CARD"),
        # a card number under its name that fails its check is still taken whole, in its groups
        ("zh", "银行卡号：6222 0212 3456 7890 123", "6222 0212 3456 7890 123", "ID_NUMBER"),
        ("zh", "工资卡卡号6222020200112345679，请核对。", None, "CN_BANK_CARD"),
        ("zh", "信用代码91350100M000100Y43。", "91350100M000100Y43", "CN_USCC"),
        ("zh", "护照号码E12345678已登记。", "E12345678", "CN_PASSPORT"),
        ("zh", "港澳通行证号C12345678。", "C12345678", "CN_TRAVEL_PERMIT"),
        ("zh", "车牌号粤B12345的车辆。", "粤B12345", "CN_LICENSE_PLATE"),
        ("zh", "你好，我是市场部的王秀英。", "王秀英", "PERSON"),
        ("zh", "加我QQ 123456789 联系。", "123456789", "QQ_NUMBER"),
        ("zh", "我的微信号是 wx_abc123，方便联系。", "wx_abc123", "WECHAT_ID"),
        ("zh", "数据库密码：Tr0ub4dor&3x", "Tr0ub4dor&3x", "SECRET"),
        # Issue #3 misses, one row per form.
        ("en", "My phone is 001-526-422-4393, call after six.", "001-526-422-4393", "PHONE_NUMBER"),
        ("en", "My phone is 001-683-567-9160x1108, ok?", "001-683-567-9160x1108", "PHONE_NUMBER"),
        ("en", "Ring 0044 20 7946 0958 tomorrow.", "0044 20 7946 0958", "PHONE_NUMBER"),
        ("en", "Send it to (212) 200-0010 before noon.", "(212) 200-0010", "PHONE_NUMBER"),
        ("en", "Fax:0049 30 901820 17 today.", "0049 30 901820 17", "PHONE_NUMBER"),
        ("en", "Call 212.555.0147 ext. 31 today.", "212.555.0147 ext. 31", "PHONE_NUMBER"),
        ("en", "My passport number is 164913680.", "164913680", "US_PASSPORT"),
        ("en", "My passport number is 670160794.", "670160794", "US_PASSPORT"),  # ABA-valid too
        ("en", "Passport A12345678 was renewed.", "A12345678", "US_PASSPORT"),
        ("en", "Driver license S3354635 expired.", "S3354635", "US_DRIVER_LICENSE"),
        ("en", "The routing number is 021000021 for payroll.", "021000021", "ABA_ROUTING_NUMBER"),
        (
            "en",
            "Block fd3a:f032:d61a:a2f7:a756:1c52:2749:959b on the firewall.",
            "fd3a:f032:d61a:a2f7:a756:1c52:2749:959b",
            "IP_ADDRESS",
        ),
        (
            "en",
            "Reset link: https://www.cox.biz/reset?token=Lt4bnlz2MPKgcjnC expires soon.",
            "https://www.cox.biz/reset?token=Lt4bnlz2MPKgcjnC",
            "URL",
        ),
        # a prefecture-level region code that stdnum's region table rejects; check char valid
        (
            "zh",
            "我的身份证号是３３０５００１９４４０６０６０６６３。",
            "３３０５００１９４４０６０６０６６３",
            "CN_ID_CARD",
        ),
        (
            "zh",
            "身份证号620201195007308602。",
            "620201195007308602",
            "CN_ID_CARD",
        ),  # stdnum KeyError
        ("zh", "身份证 110105 19491231 002X 已核对", "110105 19491231 002X", "CN_ID_CARD"),
        ("zh", "证件号1101-0519-4912-3100-2X。", "1101-0519-4912-3100-2X", "CN_ID_CARD"),
        # names in no list: an introduction + a word the model never saw; NER's split name
        ("en", "Hi team, this is orlaigh tyrrell from sales.", "orlaigh tyrrell", "PERSON"),
        ("en", "Send it to Penelope Markham before Friday.", "Penelope Markham", "PERSON"),
        ("en", "Forward it to Micheala Crinion before Friday.", "Micheala Crinion", "PERSON"),
        ("en", "Dr. Spain will review the scan.", "Spain", "PERSON"),  # a title outranks GPE
        ("en", "Forward it to Tegan MacNulty before Friday.", "Tegan MacNulty", "PERSON"),
        ("en", "My passport number is V37631611.", "V37631611", "US_PASSPORT"),  # NER said GPE
        ("en", "My SSN is 0 7 6 2 9 7 0 3 8.", "0 7 6 2 9 7 0 3 8", "US_SSN"),  # ABA-valid too
        ("en", "Bank account number 15487585862 is closed.", "15487585862", "US_BANK_NUMBER"),
        ("zh", "你好，我是市场部的马志远。", "马志远", "PERSON"),  # given name in no list
        ("zh", "家属张天佑陪同就诊。", "张天佑", "PERSON"),
        ("zh", "你好，我是市场部的欧阳子轩。", "欧阳子轩", "PERSON"),
        # a name LAC reads as a famous place, after a relation or a position: the person's
        ("zh", "客户黄山来电要求修改地址。", "黄山", "PERSON"),
        ("zh", "他妻子姜山昨天去了医院。", "姜山", "PERSON"),
        ("zh", "经理江南说明天开会。", "江南", "PERSON"),
        # Issue #15: addresses as the world writes them (en_street), postal codes, phones
        (
            "en",
            "Please ship it to Kauppakatu 12 B, 40100 Jyväskylä, Finland.",
            "Kauppakatu 12 B, 40100 Jyväskylä, Finland",
            "LOCATION",
        ),
        ("en", "She lives at Rua das Flores 210, Porto.", "Rua das Flores 210, Porto", "LOCATION"),
        ("en", "Send it to 18 Via Roma, 00184 Roma, Italy.", None, "LOCATION"),
        ("en", "> Ana Ruiz\n> 77 Calle Mayor 5\n> Suite 2\n> Spain 28013", None, "LOCATION"),
        ("en", "Meet at the corner of Main Street and Elm Avenue.", None, "LOCATION"),
        ("en", "PSC 1234, Box 5678\nAPO AE 09876", "PSC 1234, Box 5678\nAPO AE 09876", "LOCATION"),
        ("en", "Postal code: 1012 AB", "1012 AB", "LOCATION"),
        ("en", "my zip code is 2371", "2371", "LOCATION"),
        ("en", "Mobile: 0612 345 678", "0612 345 678", "PHONE_NUMBER"),
        ("en", "They're not answering at 31-42-57-68", "31-42-57-68", "PHONE_NUMBER"),
        ("en", "my iban is de89370400440532013000", "de89370400440532013000", "IBAN_CODE"),
        # names in any sentence, any Latin-script origin (name lexicon of every locale)
        ("en", "Maybe it is under Caitlyn Schulz", "Caitlyn Schulz", "PERSON"),
        ("en", "I want to add Bożena Wróblewska as a beneficiary.", None, "PERSON"),
        ("en", "Everyone calls me Radka", "Radka", "PERSON"),
        ("en", "What's your last name? Okonkwo", "Okonkwo", "PERSON"),
        ("en", "Vsevolod is very reliable.", "Vsevolod", "PERSON"),
        ("en", 'Ilse:"Where were you?"', "Ilse", "PERSON"),
        ("en", "It was directed by Joakim Westgård and starring Westgård.", "Westgård", "PERSON"),
        ("en", "The founders were Morrison, Kowalczyk and Abernathy.", "Abernathy", "PERSON"),
        ("en", "the kids are called mirela, jolanta, ksenia and tobiasz.", "tobiasz", "PERSON"),
        ("en", "ask naomi ryan about it", "naomi ryan", "PERSON"),
        ("en", "My sister just turned 37", "37", "AGE"),
        ("en", "I'm from Leeds, and I'm 26 y/o.", "26", "AGE"),
        # a few words of a script no pack reads, inside an English text
        ("en", "He grew up in Θεσσαλονίκη and moved to Leeds.", "Θεσσαλονίκη", "LOCATION"),
        # a Chinese text is also read by the English pack: Latin names, every pattern
        ("zh", "我的同事 John Smith 明天到。", "John Smith", "PERSON"),
        ("zh", "请拨打 +1 212-555-0101 联系我", "+1 212-555-0101", "PHONE_NUMBER"),
    ],
)
def test_when_text_contains_entity_then_our_pack_finds_it(
    analyzer: AnalyzerEngine, language: str, text: str, value: str | None, entity_type: str
) -> None:
    findings = scan_text(analyzer, text, CFG, language=language)

    found = {(text[f.start : f.end], f.entity_type) for f in findings}
    if value is None:
        assert entity_type in {t for _, t in found}
    else:
        assert (value, entity_type) in found


@pytest.mark.parametrize(
    ("language", "text", "absent_type"),
    [
        ("zh", "我的身份证号是110105194912310021。", "CN_ID_CARD_CHECKED"),  # check char wrong
        ("zh", "工资卡卡号6222020200112345670。", "CN_BANK_CARD"),  # Luhn fails
        ("zh", "信用代码91350100M000100Y44。", "CN_USCC"),  # check character wrong
        # an identity card number whose check digit is wrong passes the code's check by chance
        ("zh", "身份证号码：440301199003071234", "CN_USCC"),
        ("zh", "订单号123456789已发货。", "QQ_NUMBER"),  # no QQ context
        ("en", "We met at the office and looked at the dot plot.", "EMAIL_ADDRESS"),
        ("en", "The quarterly report was approved.", "DATE_OF_BIRTH"),
        ("en", "My passport number is 670160794.", "ABA_ROUTING_NUMBER"),  # a passport word
        ("en", "Order 164913680 shipped today.", "US_PASSPORT"),  # no passport word
        ("en", "Driver license S3354635 expired.", "PERSON"),  # a name has no digits
        ("en", "Block fd3a:f032:d61a:a2f7:a756:1c52:2749:959b on the firewall.", "PERSON"),
        ("en", "Hi, this is great news from HR.", "PERSON"),  # ordinary words after "this is"
        ("en", "I am very sorry about that.", "PERSON"),
        ("en", "Sales are up, Great Job everyone.", "PERSON"),  # common words, capitalized
        ("en", "Bank account number 15487585862 is closed.", "PHONE_NUMBER"),
        ("en", "My SSN is 0 7 6 2 9 7 0 3 8.", "ABA_ROUTING_NUMBER"),
        # Issue #15 negatives: numbers after a word are no address, bare numbers no phone
        ("en", "Chapter 12 covers the basics.", "LOCATION"),
        ("en", "Windows 10 and Office 365 are installed on 40 machines.", "LOCATION"),
        ("en", "Ring 0044 20 7946 0958 tomorrow.", "LOCATION"),  # "Ring" is a street word
        ("en", "We sold 12345 units.", "LOCATION"),  # no postal word
        ("en", "Order 4412 7788 shipped", "PHONE_NUMBER"),  # other regions need a phone word
        ("en", "Quarterly revenue grew 12 percent.", "LOCATION"),
        ("en", "Capitalized words like Wisdom and Discipline are no names.", "PERSON"),
        ("en", "The meeting moved to Sunday morning.", "PERSON"),  # a weekday, not a name
        # who speaks: no ordinary word, pronoun, listener (told X) or part of an organisation
        ("en", "Police said the road was closed. He said so.", "PERSON"),
        ("en", '" We are watching , " a NATO official told Reuters .', "PERSON"),
        ("en", "Meanwhile the White House said some taxes would rise.", "PERSON"),
        ("en", "Unfortunately, your order was delayed. Guys, please help.", "PERSON"),
        ("en", "Microsoft, whose shares fell 3%, said nothing.", "PERSON"),  # what has things
        ("en", "Police , who arrived late , closed the road.", "PERSON"),
        # after a relation: no ordinary word, inflected form or stop word is a name
        ("en", "my son finally called, and my friend Called me back.", "PERSON"),
        ("en", "The BRIC countries are growing.", "PERSON"),  # an acronym NER reads ORG
        ("en", "My name is important to me.", "PERSON"),  # an ordinary word after "name is"
        ("en", "Jordan's neighbour Syria closed the border.", "PERSON"),  # a country's
        ("en", "The patient said she felt better.", "PERSON"),  # "Said" is a listed name too
        ("en", "Attn: Human Resources\nFwd: meeting notes\nSubj: quarterly update", "PERSON"),
        ("en", "the city of Florence is lovely", "PERSON"),  # "of" before a place
        ("en", "ms excel crashed again, open it in ms word please", "PERSON"),  # "ms" in IT
        # initials and a word: abbreviations and lower-case words are no names
        ("en", "Use e.g. Python here; the 9 a.m. meeting moved.", "PERSON"),
        ("en", "the U.S. Open starts at 11 a.m. tomorrow", "PERSON"),
        ("en", "Paris is a beautiful city. Police lives here.", "PERSON"),  # no person noun
        ("en", "There is a nice new German place downtown.", "PERSON"),  # NER: nationality
        ("en", "x = π r² for the circle", "LOCATION"),  # a lone letter of another script
        ("en", "we bought apples, pears, plums and grapes.", "PERSON"),  # a list of words
        ("en", "I've shared files with you https://FightListings.se/", "PERSON"),  # a URL
        ("en", "Turn 3 pages, then turn left.", "AGE"),  # below the threshold: no age word
        # a slash between words an abbreviation's, not a name's (a surname and a given name)
        ("en", "Use TCP/IP and AND/OR logic; HE/SHE may apply. MEN/WOMEN ratio.", "PERSON"),
        ("en", "Input/Output and Yes/No fields, IPv4/IPv6.", "PERSON"),
        # a user's key before a word or a file's name, a system's shared account
        (
            "en",
            "The user experience is great; open config.yaml as user; username: admin",
            "USER_HANDLE",
        ),
        ("en", "Failed password for root from 10.0.0.5 port 22 ssh2", "USER_HANDLE"),
        ("en", "The title number of the book; the ticket is 5 dollars; no 5 is fine.", "ID_NUMBER"),
        # an "oh" of speech before digit words: no number read out
        ("en", "oh, one more thing: two tickets, three bags, please", "PHONE_NUMBER"),
        ("en", "oh one two three four five six seven", "ID_NUMBER"),  # counting
        ("en", "improve the user experience. It grows the user base.", "USER_HANDLE"),
        # a record's new word of the trade made of English words, a form's abbreviation, a
        # street's name before what stands there: no person
        ("en", "Onboarding checklist for new starters.", "PERSON"),
        ("en", "Timesheet approved. Telepharmacy chat opened.", "PERSON"),
        ("en", "Rx: Amoxicillin 500mg TDS x7d.", "PERSON"),
        ("en", "Meeting moved to 14:30 in the Baker Street meeting room.", "PERSON"),
        ("en", "Welcome Home! Welcome Aboard. Welcome pack enclosed.", "PERSON"),
        ("en", "this is great, thanks; this is soooo, good", "PERSON"),  # words the model knows
        ("en", "u guys r the best . i am subed and i liked the vid", "PERSON"),  # a misspelt word
        # a log's subsystem and its state, not a credential
        ("en", "WARN auth: failed login for user x; token: expired; auth=pending", "SECRET"),
        ("zh", "难道3号不行吗？", "LOCATION"),
        ("zh", "我是高兴的。", "PERSON"),  # 高 is a surname, 高兴 a dictionary word
        ("zh", "患者今天高烧不退。", "PERSON"),
        ("zh", "我们去黄山旅游了。", "PERSON"),  # a place after a verb of going
        ("zh", "广西右江有一条支流叫龙须河。", "PERSON"),  # a place "called" so
    ],
)
def test_when_value_fails_its_check_or_context_then_nothing_of_that_type(
    analyzer: AnalyzerEngine, language: str, text: str, absent_type: str
) -> None:
    findings = scan_text(analyzer, text, CFG, language=language)

    if absent_type == "CN_ID_CARD_CHECKED":
        assert all(f.score < 0.9 for f in findings if f.entity_type == "CN_ID_CARD")
    else:
        assert absent_type not in {f.entity_type for f in findings}


def test_when_fullwidth_digits_then_finding_covers_the_original_characters(
    analyzer: AnalyzerEngine,
) -> None:
    text = "卡号：６２２２０２０２００１１２３４５６７９。"

    findings = scan_text(analyzer, text, CFG, language="zh")

    assert [text[f.start : f.end] for f in findings] == ["６２２２０２０２００１１２３４５６７９"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("recognizers: [\n  - {family: email", "not valid YAML"),
        ("recognizers: []\nextra: 1\n", "unknown key 'extra'"),
        ("recognizers:\n  - {family: email, languages: [en], colour: red}\n", "colour"),
        ("recognizers:\n  - {family: nope, languages: [en]}\n", "recognizers[0].family"),
        ("recognizers:\n  - {family: email, languages: [fr]}\n", "unsupported language 'fr'"),
    ],
)
def test_when_recognizer_yaml_is_bad_then_loading_fails_naming_file_and_key(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "recognizers.yaml"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(RecognizerConfigError, match="recognizers.yaml") as error:
        load_recognizers(path)
    assert message in str(error.value)


def test_when_recognizer_file_is_bad_then_the_engine_is_not_built(tmp_path: Path) -> None:
    path = tmp_path / "recognizers.yaml"
    path.write_text("recognizers: {", encoding="utf-8")

    with pytest.raises(PIIEngineError, match=r"pii\.recognizers_file"):
        build_analyzer(CFG.model_copy(update={"recognizers_file": str(path)}))


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Reach me at ana.lopez@example.org today.", True),
        ("Write to ana.lopez at example dot org today.", True),  # normalized to an @
        ("Reach me at the front desk today.", False),
    ],
)
def test_when_a_text_has_no_at_sign_then_the_email_pattern_is_not_run(
    analyzer: AnalyzerEngine, text: str, found: bool
) -> None:
    findings = scan_text(analyzer, text, CFG)

    assert any(f.entity_type == "EMAIL_ADDRESS" for f in findings) is found


def test_when_url_hint_is_absent_then_no_url_and_when_present_then_url_is_found(
    analyzer: AnalyzerEngine,
) -> None:
    with_url = "Her page is https://portal.example.com/u/jane-doe-1984 now."
    without = "Reset it at the portal now. Thanks."

    urls = [f for f in scan_text(analyzer, with_url, CFG) if f.entity_type == "URL"]

    assert [with_url[f.start : f.end] for f in urls] == [
        "https://portal.example.com/u/jane-doe-1984"
    ]
    assert not [f for f in scan_text(analyzer, without, CFG) if f.entity_type == "URL"]


def test_when_chinese_text_is_segmented_by_block_then_tags_equal_jiebas_whole_cut() -> None:
    from pipelines.steps.privacy.recognizers import cn_names

    texts = [
        "你好，我是市场部的王秀英。请把合同发给李建国，电话13800138000。",
        "摘要：患者白建因上述症状就诊。已开具血常规检查，结果出来后再评估。",
        "地址：北京市朝阳区建国路88号A座1203室, email wang@example.cn",
    ]
    for text in texts:
        whole, position = [], 0
        for pair in cn_names._jieba().cut(text):
            whole.append((pair.word, pair.flag, position))
            position += len(pair.word)

        assert cn_names.posseg(text) == tuple(whole)


def _secret_values(text: str) -> list[str]:
    from pipelines.steps.privacy.recognizers.secrets import SecretRecognizer

    found = SecretRecognizer(language="en").analyze(text, ["SECRET"])
    return [text[r.start : r.end] for r in found if r.score >= CFG.score_threshold]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # Vendor prefixes: the key alone, no keyword near it (values made up for this test).
        ("deploy with glpat-Xq7rT2wZ9kLm4nB8vC1d", "glpat-Xq7rT2wZ9kLm4nB8vC1d"),
        ("pip config uses hf_QwErTy123456UiOpAsDfGh7890", "hf_QwErTy123456UiOpAsDfGh7890"),
        ("charge via sk_test_9fKq2LmZx81PwQe7RtYu3VbN", "sk_test_9fKq2LmZx81PwQe7RtYu3VbN"),
        # A password as a connection-string parameter (JDBC / ADO.NET).
        ("jdbc:sqlserver://db:1433;databaseName=hr;user=app;password=Zq8rT2wX;", "Zq8rT2wX"),
        # An identifier ending in the keyword, camelCase after it, passwords on command lines.
        ("export PGPASSWORD=Xk82jdLq", "Xk82jdLq"),
        ('secretKey = "Zq8rT2wXy"', "Zq8rT2wXy"),
        ("mysql -u root -pS3cretPass appdb", "S3cretPass"),
        ("curl -u admin:Passw0rd123 https://api.example.com/v1", "Passw0rd123"),
        # A generated key given to a name, the vendor's own rather than a context word.
        ("[DEBUG] Using Key=Q8wZ3nT5yR1uK7pL0mV4xC2bN6", "Q8wZ3nT5yR1uK7pL0mV4xC2bN6"),
        ('weatherly: "h4k9w2m7q1z8x3c6v5b0n2j7r4t9"', "h4k9w2m7q1z8x3c6v5b0n2j7r4t9"),
        ("GET /v1/list?key=T7yU2iO9pA4sD1fG6hJ3kL8z&page=2", "T7yU2iO9pA4sD1fG6hJ3kL8z"),
    ],
)
def test_when_a_vendor_key_or_connection_password_is_written_then_it_is_a_secret(
    text: str, value: str
) -> None:
    assert value in _secret_values(text)


@pytest.mark.parametrize(
    "text",
    [
        "mongodb+srv://<user>:<password>@cluster0.example.net/db",  # template placeholders
        "postgres://xxxx:xxxxx@db.internal:5432/app",  # masked
        "DB_PASSWORD=${DB_PASSWORD}",  # an environment reference, not the value
        "tokenizer = AutoTokenizer.from_pretrained(model_name)",  # a word that starts with token
        'order_status: "AwaitingShipmentConfirmation"',  # a named value that is words, no digits
    ],
)
def test_when_a_secret_is_only_a_placeholder_then_nothing_is_found(text: str) -> None:
    assert _secret_values(text) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # Passwords told in words, as tickets, mail and chats hold them (values made up).
        ("I can't log in. My password is Tr0ub4dor&3 and my username is jsmith.", "Tr0ub4dor&3"),
        ("The new wifi password is BlueSky-7781, please don't share it.", "BlueSky-7781"),
        ('The password for the admin account is "Adm1n!2024".', "Adm1n!2024"),
        ("The password was changed to Spr1ng-Time yesterday.", "Spr1ng-Time"),
        ("The password 'sunshine' is weak.", "sunshine"),
        ('The guest passphrase is "correct horse battery staple".', "correct horse battery staple"),
        ("Leaked with password Qr7!dke#39 in the log.", "Qr7!dke#39"),
        ("Your temporary PIN is 483920.", "483920"),
        # A long one is taken whole (no cut at a length).
        ("my password is " + "aaaa1111" * 12 + " now", "aaaa1111" * 12),
        ("Use passcode 7731-ab9X to join the call.", "7731-ab9X"),
        # Chinese prose leaves no space before the value, with or without 是 / 为 / a colon.
        ("登录账号zhangsan，密码Abc@2024。", "Abc@2024"),
        ("WiFi密码：guest8888", "guest8888"),
        # A login and its password written as a pair.
        ("Credentials exposed: ana.lopez@example.org / W!nter2024.", "W!nter2024"),
        ("creds: admin:Passw0rd!", "Passw0rd!"),
        ("The default login is admin / admin123 on every unit.", "admin123"),
        ("The pass is 'letmein42'.", "letmein42"),
        # one-time, alarm and door codes are credentials too, in either language
        ("Wifi is sunflower2024, and the alarm code is 4711.", "4711"),
        ("Your verification code is 583920.", "583920"),
        ("您的验证码是583920，5分钟内有效。", "583920"),
        ("密码：Abc@2024，请牢记", "Abc@2024"),
    ],
)
def test_when_a_password_is_told_in_words_then_it_is_a_secret(text: str, value: str) -> None:
    assert value in _secret_values(text)


@pytest.mark.parametrize(
    "text",
    [
        "The password is incorrect, please try again.",
        "Passwords are case-sensitive.",
        "Your password expires on 2024-01-02.",
        "Password must be at least 8 characters long.",
        "Enter your password in the Password field.",
        "I forgot my password. Can you reset it?",
        "Set pin 13 as output.",
        "Please send me the PIN code of your card.",
        "初始密码为身份证后六位。",
        "Please pass the salt.",
        "Enter your username/password to continue.",
        "login at 10:30:15 failed; user accounts 3/4 are locked",
        "请输入密码(8位以上)",
        "Write a function that checks whether a password is strong: at least 8 chars, one digit.",
        "Enter the code shown. The door code works.",
        "验证码6位，请勿泄露给他人",
    ],
)
def test_when_a_sentence_only_speaks_of_a_password_then_nothing_is_found(text: str) -> None:
    assert _secret_values(text) == []


def test_when_the_url_recognizer_is_linear_then_it_still_covers_every_url_presidio_finds():
    """Presidio's URL pattern backtracks over a thousand domains after every dot (issue #16.3);
    ours reads each run once. On random strings of URL-ish pieces every URL Presidio's own
    recognizer finds (unquoted forms; the quoted ones add only the quotes) lies inside one of
    ours with at least its score, less trailing punctuation, which ours leaves out."""
    import random

    from presidio_analyzer.predefined_recognizers import UrlRecognizer

    from pipelines.steps.privacy.pii import use_offline_tldextract
    from pipelines.steps.privacy.recognizers.en_url import FullUrlRecognizer

    use_offline_tldextract()
    presidio = UrlRecognizer(patterns=UrlRecognizer.PATTERNS[:2])
    ours = FullUrlRecognizer(language="en")
    pieces = [*"abcmoiwt.-/: h1", "com", "www.", "http://", "https://", ".org", ".io", "中"]
    pieces += [".co.uk", "?q=1", "..", "'", '"']
    rng = random.Random(16)
    missed = []
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 30)))
        found = ours.analyze(text, ["URL"])
        for r in presidio.analyze(text, ["URL"]):
            end = r.start + len(text[r.start : r.end].rstrip(".,;:!?"))
            if not any(f.start <= r.start and end <= f.end and f.score >= r.score for f in found):
                missed.append((text, r.start, r.end))
    assert missed == []


def test_when_a_url_has_a_path_then_the_span_runs_to_its_end():
    from pipelines.steps.privacy.recognizers.en_url import FullUrlRecognizer

    ours = FullUrlRecognizer(language="en")
    text = "See https://www.cox.biz/reset?token=abc. Or www.example.co.uk/page, ok"
    spans = [text[r.start : r.end] for r in ours.analyze(text, ["URL"])]
    assert spans == ["https://www.cox.biz/reset?token=abc", "www.example.co.uk/page"]
    assert ours.analyze("a." * 20_000 + " and that is all", ["URL"]) == []


def _phones_found(text: str) -> list[str]:
    """The English pack's phone recognizer's confident spans in `text`."""
    from pipelines.steps.privacy.recognizers.en_phone import IntlPhoneRecognizer

    recognizer = IntlPhoneRecognizer(language="en")
    return [
        text[r.start : r.end] for r in recognizer.analyze(text, ["PHONE_NUMBER"]) if r.score >= 0.4
    ]


def test_a_phone_written_the_north_american_way_is_found_even_with_an_unassigned_area_code():
    """ "(555) 123-4567" has no assigned area code, so phonenumbers calls it invalid; its layout
    makes it a phone all the same (a LLaMA-Factory demo answer held it and the residual gate,
    not the scrubber, caught it). The range reserved for fiction (555-0100..0199) stays out."""
    found = _phones_found

    assert found("Sample output: (555) 123-4567 is formatted.") == ["(555) 123-4567"]
    assert found("Order 555-123-4567 shipped") == ["555-123-4567"]
    assert found("ISBN 978-3-16-148410-0 and 1990-2000") == []
    assert found("Order 555-555-0142 shipped") == []  # invalid and in the fiction range


def test_a_british_mobile_number_is_found_by_its_layout_without_a_phone_word():
    """07 and nine digits, a space after the fifth or none: no phone word needed (`is 07412
    900461 still the best number`); other British formats still need one, and Ofcom's drama
    range (07700 900xxx) stays out, as 555-01xx does."""
    found = _phones_found

    assert found("And is 07412 900461 still the best number for you?") == ["07412 900461"]
    assert found("Texts go to 07412900461 from now on.") == ["07412900461"]
    assert found("The total was 0141 496 0123 units.") == []  # a landline's layout: a word
    assert found("And is 07700 900461 still the best number?") == []  # drama
    assert found("ratio 0.7412900461 and 107412900461") == []


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("The parcel left our depot in Kraków 30-001 yesterday.", "30-001"),
        ("She moved to Tromsø 9008, Norway, last spring.", "9008"),
        ("Write to the clinic at 75008 Paris for the results.", "75008"),
        ("the office in santa teresa del tuy 1209 closed", "1209"),  # a text with no capitals
        ("Our branch in Zollikerberg 8125 is open on Sundays.", "8125"),
    ],
)
def test_a_postal_code_beside_a_place_is_found_without_a_postal_word(
    analyzer: AnalyzerEngine, text: str, code: str
) -> None:
    findings = scan_text(analyzer, text, CFG)
    start = text.index(code)
    assert any(
        f.entity_type == "LOCATION" and f.start <= start and start + len(code) <= f.end
        for f in findings
    )


@pytest.mark.parametrize(
    "text",
    [
        "I have one two three four apples.",  # three digit words, four digits
        "One two three four five six seven, ready or not!",  # counting
        "the score was two one at half time",
        "Oh well, one more try.",
    ],
)
def test_when_digit_words_are_no_number_read_out_then_none_is_found(
    analyzer: AnalyzerEngine, text: str
) -> None:
    found = {f.entity_type for f in scan_text(analyzer, text, CFG)}
    assert not found & {"PHONE_NUMBER", "US_SSN", "ID_NUMBER"}


@pytest.mark.parametrize(
    ("text", "address"),
    [
        # a unit written before its street
        ("Unit 7, 300 King St W, Toronto ON M5V 1J5", "Unit 7, 300 King St W, Toronto ON M5V 1J5"),
        (
            "Her address is Flat 3, 77 Queen's Road, London SW1A 2AA.",
            "Flat 3, 77 Queen's Road, London SW1A 2AA",
        ),
        ("Level 3, 100 George St, Sydney NSW 2000", "Level 3, 100 George St, Sydney NSW 2000"),
        # a unit and a house number as one (Australia), and a post office box with its town
        (
            "He lives at 12/34 Smith Street, Fitzroy VIC 3065.",
            "12/34 Smith Street, Fitzroy VIC 3065",
        ),
        ("Mail it to PO Box 4471, Anchorage, AK 99501.", "PO Box 4471, Anchorage, AK 99501"),
        # USPS street-type abbreviations (Pkwy, Cir, Hwy)
        (
            "Send it to 1600 Amphitheatre Pkwy, Mountain View, CA 94043",
            "1600 Amphitheatre Pkwy, Mountain View, CA 94043",
        ),
        ("She lives at 12 Oak Cir, Apt 3, Reno, NV 89501.", "12 Oak Cir, Apt 3, Reno, NV 89501"),
        # the street's name first, after words of the sentence that opened the candidate
        ("He lives at Nørregade 10 in Copenhagen.", "Nørregade 10"),
        ("Visit us at Kiannonkatu 98, Helsinki.", "Kiannonkatu 98, Helsinki"),
    ],
)
def test_an_address_is_found_whole_with_its_unit_box_and_postal_code(
    analyzer: AnalyzerEngine, text: str, address: str
) -> None:
    spans = [text[f.start : f.end] for f in scan_text(analyzer, text, CFG)]
    assert address in spans


@pytest.mark.parametrize(
    "text",
    [
        "Flat 14B, 300 Riverside Drive. Tenant ref TNT-0045521.",
        "I live at 300 Riverside Drive. My ref is ABC.",
        "He moved to 42 Wallaby Way. Sydney is nice.",
    ],
)
def test_a_street_written_in_full_then_a_full_stop_ends_the_address(
    analyzer: AnalyzerEngine, text: str
) -> None:
    """The next sentence's first words are no town (`Drive. Tenant ref`); an abbreviation's dot
    (`Pkwy, Mountain View`, `Oak Blvd. Austin`) still goes on (the tests above)."""
    stop = text.index(". ")
    findings = scan_text(analyzer, text, CFG)
    assert any(f.entity_type == "LOCATION" and f.start < stop for f in findings)
    assert not any(f.start < stop and f.end > stop + 2 for f in findings)


@pytest.mark.parametrize(
    ("text", "street"),
    [
        ("The area of your rectangle is 15 square units.", None),
        ("The most a player can score on a question is 2 points. That means", None),
        ("i live at 42 maple avenue, springfield", "42 maple avenue"),  # a context word
        ("send it to 12 main st please", "12 main st"),  # an abbreviated street type
        ("the office is at 500 oak street", "500 oak street"),
        ("The clubs were on 1636 street in Recife.", "1636 street"),  # only a street's word
    ],
)
def test_a_number_before_an_ordinary_word_in_lower_case_is_a_street_only_with_more_evidence(
    analyzer: AnalyzerEngine, text: str, street: str | None
) -> None:
    locations = [
        text[f.start : f.end] for f in scan_text(analyzer, text, CFG) if f.entity_type == "LOCATION"
    ]
    if street is None:
        assert not any(any(c.isdigit() for c in found) for found in locations)
    else:
        assert street in locations


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Our office: Level 3, WC2R 0EZ", "WC2R 0EZ"),  # a whole UK postcode, no place beside
        ("Send it to K1A 0B1 by Friday", "K1A 0B1"),  # a Canadian one
    ],
)
def test_a_whole_uk_or_canadian_postcode_is_found_alone(
    analyzer: AnalyzerEngine, text: str, code: str
) -> None:
    assert code in [text[f.start : f.end] for f in scan_text(analyzer, text, CFG)]


def test_every_usps_abbreviation_is_one_usaddress_knows() -> None:
    import usaddress

    from pipelines.steps.privacy.recognizers.en_street import USPS_ABBREVIATIONS

    assert {a.lower() for a in USPS_ABBREVIATIONS} <= usaddress.STREET_NAMES


def test_an_ip_address_in_chinese_text_with_a_phone_word_is_no_phone(analyzer) -> None:
    text = "打开浏览器，输入路由器的管理地址（通常是192.168.0.1），或用智能手机连接。"
    found = scan_text(analyzer, text, CFG, language="zh")
    assert "PHONE_NUMBER" not in {f.entity_type for f in found}


@pytest.mark.parametrize(
    "text",
    [
        "Call 555-1234 ext 204 please.",  # Ext is left out: a phone's extension
        "We won by 12 pts and lost by 3 pts.",
        "The Ring 5 was sold. Chapter Via 3 of the book. Table Place 4.",
        "Event A: On August 10, 1519, Ferdinand Magellan departs.",  # a date
        "Glamorgan 259 ( A. Dale 69 , H. Morris 69 )",  # an initial: a player and his runs
    ],
)
def test_a_number_before_a_word_usps_also_abbreviates_is_no_street(
    analyzer: AnalyzerEngine, text: str
) -> None:
    assert [f for f in scan_text(analyzer, text, CFG) if f.entity_type == "LOCATION"] == []


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("We met in Paris 2019 and again later.", "2019"),  # a year
        ("She flew from Boston 3500 miles.", "3500"),  # a noun follows: a quantity
        ("The meeting in Berlin 1200 attendees came to.", "1200"),
        ("Invoice 15000 was paid in London.", "15000"),  # no place before it
        ("The talk is in Room 1021 this afternoon.", "1021"),  # "Room" is a word, not a place
        ("I'm currently at 123 Main Street with Anna.", "123"),  # a house number (the street's)
    ],
)
def test_a_number_that_is_no_postal_code_is_not_one(
    analyzer: AnalyzerEngine, text: str, number: str
) -> None:
    findings = [
        f
        for f in scan_text(analyzer, text, CFG)
        if f.entity_type == "LOCATION" and text[f.start : f.end] == number
    ]
    assert findings == []


def _handles(analyzer, text: str, language: str = "en") -> list[str]:
    return [
        text[f.start : f.end]
        for f in scan_text(analyzer, text, CFG, language=language)
        if f.entity_type == "USER_HANDLE"
    ]


@pytest.mark.parametrize(
    ("text", "language", "handles"),
    [
        (
            "A collection of tweets from the Twitter handle @sarcastic_tweets.",
            "en",
            ["@sarcastic_tweets"],
        ),
        ("cc @john_doe, @mary-k please review the ticket", "en", ["@john_doe", "@mary-k"]),
        ("@ops-lead can you check the build?", "en", ["@ops-lead"]),
        ("回复@碧落食人来：好的，明天见", "zh", ["@碧落食人来"]),
        ("太好了//@大象院长：转发微博。", "zh", ["@大象院长"]),
        ("哈哈//@何辛ESPN卫视主持人:哈哈", "zh", ["@何辛ESPN卫视主持人"]),  # one account, whole
        ("@小雨要做快乐的上班族", "zh", ["@小雨要做快乐的上班族"]),  # alone: no decorator
        # Slack's and Teams' names go on after a dot; a top-level domain does not
        ("@olivia.b @nate can you two sync before tomorrow?", "en", ["@olivia.b", "@nate"]),
        ("Ping @tom.nguyen if the build breaks again.", "en", ["@tom.nguyen"]),
    ],
)
def test_when_a_handle_is_written_with_its_at_sign_then_it_is_found(
    analyzer, text: str, language: str, handles: list[str]
) -> None:
    assert _handles(analyzer, text, language) == handles


@pytest.mark.parametrize(
    "text",
    [
        "Email me at jane.doe@example.com",
        "@property\ndef name(self):\n    return self._name",
        "    @app.route('/users')",
        "import type { Node } from '@types/node'",
        "SELECT * FROM t WHERE id = @id AND n=@name",
        "DECLARE @count INT; SET @count = 1",
        '{"@id": "1", "@type": "Person"}',
        "@media screen and (max-width: 600px) { body { margin: 0 } }",
        "Sign up with your @gmail.com address.",
        "See you @3pm, icon@2x.png is attached.",
        "/** @param name the user's name @returns nothing */",
        "@obj.method\ndef run(self): ...",  # a dotted decorator ending its line
        "  @pytest.mark.slow\n  def test_it(): ...",
    ],
)
def test_when_an_at_sign_belongs_to_code_or_an_address_then_no_handle_is_found(
    analyzer, text: str
) -> None:
    assert _handles(analyzer, text) == []


def _persons(analyzer, text: str) -> list[str]:
    return [
        text[f.start : f.end]
        for f in scan_text(analyzer, text, CFG, language="en")
        if f.entity_type == "PERSON"
    ]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Hi Tanner, thanks for the quick reply.", "Tanner"),  # listed, and an English word
        ("Thanks Nick, that fixed it.", "Nick"),
        ("Hi Michter , we are interested in using your video .", "Michter"),  # rare word
        ("Ask Priya about the invoice before Friday.", "Priya"),
        ("Thanks for the update.\n\nBest regards,\nPriya\n", "Priya"),
        ("Hi team, Rajesh here from billing. Customer Li Wei called.", "Rajesh"),
        # a sentence's capitalized first word before a full name
        ("Contact Søren Pedersen at the office.", "Søren Pedersen"),
    ],
)
def test_when_a_message_addresses_or_signs_with_one_name_then_it_is_a_person(
    analyzer, text: str, name: str
) -> None:
    # spaCy's small model reads none of these names alone.
    assert name in _persons(analyzer, text)


@pytest.mark.parametrize(
    "text",
    [
        "Hi all, the build is green again.",
        "Thanks again for your help.",
        "Hello World!",
        "Dear Customer, your order has shipped.",
        "Good morning Team, the report is attached.",
        "Contact Support for help with billing.",
        "Thanks,\nThe Billing Team\n",
        "Nothing here. Click here to continue. Sign here, please.",
        "Everyone here, listen. Parking here is free.",
        "Call Customer Care Desk now.",
    ],
)
def test_when_a_greeting_or_sign_off_names_no_one_then_no_person_is_found(
    analyzer, text: str
) -> None:
    assert _persons(analyzer, text) == []


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Calvin Whitaker\nPhone:\n467 3395", "Calvin Whitaker"),  # a form's next label
        ("Best,\nMaria Lopez\nDining room manager", "Maria Lopez"),  # a signature's title
        ("Linda P Nguyen\n\nStaff development specialist", "Linda P Nguyen"),
        # a name that goes on in the next line keeps it
        ("thanks, emidio p lombardo\ngarcia-smith", "lombardo\ngarcia-smith"),
    ],
)
def test_a_name_stops_at_a_line_end_before_an_ordinary_word(analyzer, text: str, name) -> None:
    # en_core_web_sm reads "Calvin Whitaker\nPhone" as one person
    assert name in _persons(analyzer, text)


def test_a_greeting_or_an_interjection_before_a_name_is_no_part_of_it(analyzer) -> None:
    # en_core_web_sm reads "Sorry kishan" as one person
    assert _persons(analyzer, "Sorry kishan, let me check order 4411 for you.") == ["kishan"]
    assert _persons(analyzer, "Will Smith starred in it.") == ["Will Smith"]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Hello Ji-hoon! Happy to help.", "Ji-hoon"),  # a hyphenated given name
        ("Thank you Min-seo. The email is updated.", "Min-seo"),
        ("Regards, Funmilayo (HR Shared Services)", "Funmilayo"),  # a signature with a desk
        ("I added you to the team. Priyanka (IT)", "Priyanka"),
    ],
)
def test_a_name_greeted_or_signing_with_a_desk_is_found(analyzer, text: str, name: str) -> None:
    assert name in _persons(analyzer, text)


def test_a_closing_brackets_words_are_no_signature(analyzer) -> None:
    assert _persons(analyzer, "See the docs, Python (programming language)") == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("hello my order 112-4490031-7752 hasnt arrived", "112-4490031-7752"),
        ("I can see order 88213345 and the return", "88213345"),
        ("the payment from account 1002 3344 5566.", "1002 3344 5566"),
        ("Policy HOME-55120. Reports water damage", "HOME-55120"),
        ("The refill for Rx 6620419 will be ready", "6620419"),
        ("payroll number 55-2091", "55-2091"),
    ],
)
def test_a_records_number_written_right_after_its_kind_is_an_identifier(
    analyzer, text: str, value: str
) -> None:
    found = [text[f.start : f.end] for f in scan_text(analyzer, text, CFG, language="en")]
    assert value in found


@pytest.mark.parametrize(
    "text", ["We need an order 10000 units by Friday.", "the account 2023 summary", "policy 2 of 5"]
)
def test_a_quantity_or_a_year_after_a_records_kind_is_no_identifier(analyzer, text: str) -> None:
    assert scan_text(analyzer, text, CFG, language="en") == []


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("我订机票时英文名写的是Zhang Wei，需要改成ZHANG WEI大写吗", ["Zhang Wei", "ZHANG WEI"]),
        ("你好，我叫 liu jianguo，会员积分被清零了", ["liu jianguo"]),
        ("我在Hong Kong工作，he ran fast", []),
    ],
)
def test_a_romanized_chinese_name_in_chinese_text_is_a_person(analyzer, text: str, names) -> None:
    found = scan_text(analyzer, text, CFG, language="zh")
    assert [text[f.start : f.end] for f in found if f.entity_type == "PERSON"] == names


def test_an_account_word_after_username_is_a_handle_and_this_morning_greets_no_one(
    analyzer,
) -> None:
    text = "her laptop got reimaged this morning, username agallagher"
    found = [(f.entity_type, text[f.start : f.end]) for f in scan_text(analyzer, text, CFG)]
    assert found == [("USER_HANDLE", "agallagher")]  # "username" was read as a greeted name
    for text in ("please enter your username and password", "the login screen is broken"):
        assert scan_text(analyzer, text, CFG) == []


def test_a_name_introduced_once_is_found_wherever_it_comes_again_in_any_case(analyzer) -> None:
    text = "did you call him hubert ? my name is Hubert and hubert is fine"
    assert _persons(analyzer, text) == ["hubert", "Hubert", "hubert"]
    # an English word stays a word elsewhere in lower case
    assert "bill" not in _persons(analyzer, "My name is Bill. Please pay the bill today.")


def test_when_a_relation_is_a_businesss_then_no_name_is_read_beside_it() -> None:
    from pipelines.steps.privacy.recognizers.en_person import _KIN, _KIN_OF

    assert _KIN_OF.search("Deltora's sister company was sold.") is None
    assert _KIN.search("our partner bank Zentrix agreed") is None
    assert _KIN_OF.search("Deltora's sister Anna came.").group(1) == "Deltora"
    assert _KIN.search("my partner Zentrix agreed").group(1) == "Zentrix"


@pytest.mark.parametrize(
    ("text", "language", "names"),
    [
        (
            "name,email,dob\nHenrik Lund,henrik.lund@example.no,1979-02-11\n"
            "ewa zielinska,ewa@example.pl,1990-04-12\n",
            "en",
            ["Henrik Lund", "ewa zielinska"],
        ),
        ("first_name\tlast_name\tcity\njane\tdoe\tspringfield\n", "en", ["jane", "doe"]),
        (
            "| 姓名 | 电话 | 地址 |\n|---|---|---|\n| 钱多多 | 13912345678 | 上海市 |\n"
            "| 高山 | 13800001111 | 北京市 |\n",
            "zh",
            ["钱多多", "高山"],
        ),
        (
            "| 名字 | 人口 |\n|----|----|\n| 中国 | 13亿 |\n| 印度 | 13亿 |\n\n"
            "| 名字 | 电话 |\n|---|---|\n| 王秀英 | 139 |\n",
            "zh",
            ["王秀英"],  # 名字 names any thing: the name model reads a person's only
        ),
    ],
)
def test_the_cells_of_a_tables_name_column_are_persons(
    analyzer: AnalyzerEngine, text: str, language: str, names: list[str]
) -> None:
    from pipelines.steps.privacy.recognizers.tables import NameColumnRecognizer

    found = [
        text[r.start : r.end]
        for r in NameColumnRecognizer(language=language).analyze(text, ["PERSON"])
    ]
    assert found == names
    scanned = {text[f.start : f.end] for f in scan_text(analyzer, text, CFG, language=language)}
    assert set(names) <= scanned


@pytest.mark.parametrize(
    ("text", "names"),
    [
        # a list in prose, then a sentence with as many commas: no table
        ("Please list: Name, Age, City\nJohn went to Paris, he was 30, and stayed\n", []),
        # the column holds no names: placeholders, numbers, addresses
        ("name,id\nn/a,17\n1234,18\nx@y.org,19\n", []),
        # a table ends where its shape does
        (
            "name,email\nAnna,anna@example.org\nThe meeting is on Monday, as planned, at noon\n",
            ["Anna"],
        ),
        ("product,price\nWidget Pro,10\n", []),  # no person's column
        # a generic header: only what the name models read as a person's name
        ("name,price\nWidget Pro,10\nMaria Lopez,12\n", ["Maria Lopez"]),
        ("name,population\nChad,16M\nJordan,10M\nFrance,67M\n", []),  # places
        # a key-value table under its own header: the value beside a person's label
        (
            "| Field | Value |\n|------|------|\n| Name | Peter |\n| Age | 43 |\n"
            "| Occupation | Doctor |\n",
            ["Peter"],
        ),
    ],
)
def test_a_table_reads_names_only_in_its_name_column_and_its_own_rows(
    text: str, names: list[str]
) -> None:
    from pipelines.steps.privacy.recognizers.tables import NameColumnRecognizer

    found = [
        text[r.start : r.end] for r in NameColumnRecognizer(language="en").analyze(text, ["PERSON"])
    ]
    assert found == names


def test_the_audits_canaries_pass_the_scrub_unfound(analyzer: AnalyzerEngine) -> None:
    """The canary-exposure audit measures memorization of secrets the model was trained on:
    every canary prefix with its secret must come through the scan with no finding on the
    secret (a rule that reads "keypad code is 1314" as a credential would replace it)."""
    from pipelines.steps.audit.planting import CANARY_PREFIXES

    for prefix, length in CANARY_PREFIXES:
        text = prefix + "1234567890"[:length] + "."
        secret_start = len(prefix)
        found = [f for f in scan_text(analyzer, text, CFG) if f.end > secret_start]
        assert found == [], (prefix, [(f.entity_type, text[f.start : f.end]) for f in found])


def test_a_keyed_ids_closing_letter_apart_is_taken_only_before_a_mark(
    analyzer: AnalyzerEngine,
) -> None:
    # `QQ 12 34 56 C,` closes with its letter; `12345678 I think` is the pronoun, not the id's
    text = "my member ID is 12345678 I think, and NI number QQ 12 34 56 C."
    found = {
        text[f.start : f.end]
        for f in scan_text(analyzer, text, CFG)
        if f.entity_type == "ID_NUMBER"
    }
    assert found == {"12345678", "QQ 12 34 56 C"}
